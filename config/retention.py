"""Deleting (or blanking) old rows in short batches: a purge of a year's audit trail never locks a
table for long."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.db.models import QuerySet

RETENTION_BATCH_SIZE = 1000


def rows_delete_in_batches(
    queryset: QuerySet, *, dry_run: bool, batch_size: int = RETENTION_BATCH_SIZE
) -> int:
    """Delete the rows ``queryset`` matches, ``batch_size`` per transaction; how many (or would be)."""
    return _in_batches(queryset, lambda rows: rows.delete(), dry_run=dry_run, batch_size=batch_size)


def rows_update_in_batches(
    queryset: QuerySet, values: dict, *, dry_run: bool, batch_size: int = RETENTION_BATCH_SIZE
) -> int:
    """Set ``values`` on the rows ``queryset`` matches (which must then no longer match it), in
    batches like a delete; how many."""
    return _in_batches(queryset, lambda rows: rows.update(**values), dry_run=dry_run, batch_size=batch_size)


def _in_batches(
    queryset: QuerySet, act: Callable[[QuerySet], object], *, dry_run: bool, batch_size: int
) -> int:
    if dry_run:
        return queryset.count()
    done = 0
    # Keys first, then the write by key: MySQL/MariaDB refuse LIMIT inside an IN subquery, and
    # each batch commits on its own, so requests writing the same table wait for one batch at most.
    while keys := list(queryset.order_by().values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            act(queryset.model.objects.filter(pk__in=keys))
        done += len(keys)
    return done
