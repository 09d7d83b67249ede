"""The system status page in the admin: "Operations → System status", for staff.

Registered as the admin page of an unmanaged model (``operations.models.SystemStatus``), so it
is an ordinary entry of whichever admin site the project runs: in the index and the sidebar,
behind the site's own sign-in rules, with nothing to add, change or delete.

Its one action, "Deliver now", runs what ``gitops_sync`` runs (without compacting): after a
failed delivery the operator need not wait for the CronJob, or make an unrelated change, to
get the waiting changes out, and is told at once whether the remote took them.
"""

from __future__ import annotations

import logging

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers

from accounts.admin import ReadOnlyAdmin
from clusters.selectors import gitops_remote_state
from clusters.sync import SyncReport, repository_sync, sync_done, sync_notes, sync_problems
from gitops.errors import RepositoryUnavailable
from operations.models import SystemStatus
from operations.selectors import PROBE_TIMEOUT_SECONDS, SLOW_ROUND_TRIP_MS, system_status

logger = logging.getLogger(__name__)

_FOLDERS_NAMED = 10  # in a message; gitops_sync --check names every one


def _staff(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_staff)


def _delivery_message(report: SyncReport) -> tuple[int, str]:
    """What "Deliver now" did, as the message level and text the operator reads."""
    done, problems = sync_done(report), sync_problems(report)
    if not report.pushed:
        state = gitops_remote_state()
        if state is not None and state.last_failure_reason:
            problems.append(f"The remote answered: {state.last_failure_reason}")
    if report.unknown_folders:
        named = [folder.path for folder in report.unknown_folders[:_FOLDERS_NAMED]]
        more = len(report.unknown_folders) - len(named)
        problems.append(f"Unknown: {', '.join(named)}{f' and {more} more' if more else ''}.")
    problems += list(report.conflicts)  # each names its cluster and what to fix
    problems += sync_notes(report)  # the Argo CD manifests: a warning here, where nothing else fails
    if problems:
        return messages.WARNING, " ".join(["Deliver now:", *done, *problems])
    if not done:
        return messages.SUCCESS, "Nothing to deliver: no change was waiting, and git matches the database."
    return messages.SUCCESS, " ".join(["Delivered:", *done])


@admin.register(SystemStatus)
class SystemStatusAdmin(ReadOnlyAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return _staff(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return _staff(request)

    def has_deliver_permission(self, request: HttpRequest) -> bool:
        # Whoever may change clusters may send the changes on: a delivery writes only what the
        # database already says.
        return request.user.has_perm("clusters.change_cluster")

    def get_urls(self):
        # The model's "changelist" is the page; the name is the one the admin index links to.
        return [
            path(
                "deliver/",
                self.admin_site.admin_view(self.deliver_view),
                name="operations_systemstatus_deliver",
            ),
            path("", self.admin_site.admin_view(self.status_view), name="operations_systemstatus_changelist"),
        ]

    def deliver_view(self, request: HttpRequest) -> HttpResponseRedirect | HttpResponseNotAllowed:
        """Deliver the waiting changes now (POST), then back to the page with what happened."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_deliver_permission(request):
            raise PermissionDenied
        try:  # never with database_wins: writing over changes the database lacks is gitops_sync's, asked for
            level, text = _delivery_message(repository_sync(compact=False))
        except RepositoryUnavailable as error:
            level, text = (
                messages.ERROR,
                f"Nothing was delivered: the GitOps repository is unavailable ({error}).",
            )
        # A sync also writes git back to the database's state over hand edits: who ran it is kept.
        logger.info("deliver now: %s", text, extra={"actor_id": request.user.pk})
        self.message_user(request, text, level)
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:operations_systemstatus_changelist"))

    def status_view(self, request: HttpRequest) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "System status",
            "opts": self.model._meta,
            "status": system_status(),
            "may_deliver": self.has_deliver_permission(request),
            "probe_timeout_seconds": PROBE_TIMEOUT_SECONDS,
            "slow_round_trip_ms": SLOW_ROUND_TRIP_MS,
        }
        response = TemplateResponse(request, "admin/operations/system_status.html", context)
        add_never_cache_headers(response)
        return response
