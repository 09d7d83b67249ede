"""The admin's list filters of clusters and their changes."""

from __future__ import annotations

from django.contrib import admin

from clusters.deployment_states import DEPLOYED, DEPLOYMENT_STATES
from clusters.deployments import all_deployments, argocd_configured
from clusters.models import RECORD_ONLY_ACTIONS
from clusters.selectors import changes_pending

NOT_DEPLOYED = "not_deployed"


class DeploymentStateFilter(admin.SimpleListFilter):
    """Clusters by what Argo CD reports (only with ARGOCD_URL): "not deployed" is every state but deployed."""

    title = "deployment"
    parameter_name = "deployment"

    def lookups(self, request, model_admin):
        if not argocd_configured():
            return []
        return [(NOT_DEPLOYED, "not deployed"), *[(state, state) for state in DEPLOYMENT_STATES]]

    def queryset(self, request, queryset):
        wanted = self.value()
        if not wanted or not argocd_configured():
            return queryset
        matching = [
            cluster.pk
            for cluster, deployment in all_deployments()
            if deployment.state == wanted or (wanted == NOT_DEPLOYED and deployment.state != DEPLOYED)
        ]
        return queryset.filter(pk__in=matching)


class ChangeDeliveryFilter(admin.SimpleListFilter):
    """Changes by where they are on the way to git. Storage requests change nothing in git: they are
    neither delivered nor waiting (so "waiting" matches the status page's pending changes)."""

    title = "delivery"
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [
            ("pushed", "on the git remote"),
            ("waiting", "waiting for the git remote"),
            ("record", "history only (storage requests)"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "pushed":
            return queryset.filter(pushed=True)  # a pushed change has a commit: never history only
        if self.value() == "waiting":
            return queryset & changes_pending()  # the status page's rule
        if self.value() == "record":
            return queryset.filter(action__in=RECORD_ONLY_ACTIONS)
        return queryset


class DecommissionedFilter(admin.SimpleListFilter):
    """In service (the clusters clients see), decommissioned (stopped) or removed from git."""

    title = "service"
    parameter_name = "service"

    def lookups(self, request, model_admin):
        return [
            ("in_service", "In service"),
            ("decommissioned", "Decommissioned"),
            ("removed", "Removed from git"),
        ]

    def queryset(self, request, queryset):
        wanted = {
            "in_service": {"decommissioned_at": None},
            "decommissioned": {"decommissioned_at__isnull": False, "removed_at": None},
            "removed": {"removed_at__isnull": False},
        }.get(self.value())
        return queryset.filter(**wanted) if wanted else queryset


def client_filter(client_path: str) -> type[admin.SimpleListFilter]:
    """A list filter by client, ``?client=<slug>`` (the client's page links to it), that shows only
    the client chosen: a list of every client would fill the sidebar with hundreds of links, and
    each list's search box already finds a client's rows. ``client_path``: the lookup to the client."""

    class ClientFilter(admin.SimpleListFilter):
        title = "client"
        parameter_name = "client"

        def lookups(self, request, model_admin):
            slug = self.value()
            return [(slug, slug)] if slug else []

        def queryset(self, request, queryset):
            slug = self.value()
            return queryset.filter(**{f"{client_path}__slug": slug}) if slug else queryset

    return ClientFilter
