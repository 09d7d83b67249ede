"""The admin's list filters of clusters and their changes."""

from __future__ import annotations

from django.contrib import admin

from clusters.deployments import DEPLOYED, DEPLOYMENT_STATES, all_deployments, argocd_configured
from clusters.models import RECORD_ONLY_ACTIONS

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
        in_git = queryset.exclude(action__in=RECORD_ONLY_ACTIONS)
        chosen = {
            "pushed": in_git.filter(pushed=True),
            "waiting": in_git.filter(pushed=False),
            "record": queryset.filter(action__in=RECORD_ONLY_ACTIONS),
        }
        return chosen.get(self.value(), queryset)
