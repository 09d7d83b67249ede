"""No tables: the one model is how the system status page takes its place in the admin."""

from __future__ import annotations

from django.db import models


class SystemStatus(models.Model):
    """The admin's "System status" entry (``operations.admin``): a page, not a table.

    Unmanaged, so no table is ever created; registering it gives the page the admin's own
    URL, index entry, breadcrumbs and sidebar, whichever admin site the project runs.
    """

    class Meta:
        managed = False
        verbose_name = "system status"
        verbose_name_plural = "system status"
        default_permissions = ()

    def __str__(self) -> str:
        return "System status"
