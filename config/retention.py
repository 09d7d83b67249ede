"""Deleting old rows in short batches: a purge of a year's audit trail never locks a table for long."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

RETENTION_BATCH_SIZE = 1000


def rows_delete_in_batches(
    queryset: QuerySet, *, dry_run: bool, batch_size: int = RETENTION_BATCH_SIZE
) -> int:
    """Delete the rows ``queryset`` matches, ``batch_size`` per transaction; how many (or would be)."""
    if dry_run:
        return queryset.count()
    deleted = 0
    # Keys first, then a delete by key: MySQL/MariaDB refuse LIMIT inside an IN subquery, and
    # each batch commits on its own, so requests writing the same table wait for one batch at most.
    while keys := list(queryset.order_by().values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            queryset.model.objects.filter(pk__in=keys).delete()
        deleted += len(keys)
    return deleted
