"""Who holds Django's model permissions (the admin's): operators only.

The admin's pages act on every client, while a user who is not an operator reaches only the
clients of their grants (the API's rule, ``clusters.permissions``). So staff who are not
operators hold no model permission, whatever their groups or permissions say: their admin is
the system status page. Superusers hold every permission (Django checks them first).
"""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend


class OperatorPermissionsBackend(ModelBackend):
    def get_all_permissions(self, user_obj, obj=None) -> set[str]:
        if not getattr(user_obj, "is_operator", False):
            return set()
        return super().get_all_permissions(user_obj, obj)
