"""The team's models that ``clusters/models.py`` has no room for (it imports them, so they are found
there like the others)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class RemovedMember(models.Model):
    """Someone taken off a client's team (by an admin, an operator, or with their account): a
    Google sign-in does not make them a member again, however long ago it was. Becoming a member
    again (an accepted invitation, an operator adding them) ends it.

    Kept apart from the client's audit trail, which ``records_prune`` deletes after AUDIT_RETENTION.
    """

    client = models.ForeignKey("clusters.Client", on_delete=models.CASCADE, related_name="+")
    # Canonical, as User.email: a deleted account's owner signing in again comes with this address.
    email = models.EmailField(max_length=254)
    # While the account exists: an operator may change its address, and the removal still holds.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    removed_at = models.DateTimeField(default=timezone.now)
    removed_by_email = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-removed_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["client", "email"], name="clusters_removedmember_one_per_email"),
        ]

    def __str__(self) -> str:
        return f"{self.email} removed from {self.client}"
