"""The operators' way to take a cluster out of service (``clusters.services.decommission``): one
page per step, each saying what it does and asking for the cluster's name typed out and a recent
sign-in; and the runbook of each step on the cluster's page."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.admin_site import recent_sign_in_refusal
from clusters.admin_delivery import change_made
from clusters.deployments import cluster_application
from clusters.models import Cluster, ClusterChange
from clusters.selectors import cluster_last_change
from clusters.services import ClusterChangeResult, cluster_decommission, cluster_remove
from config.errors import PortalError
from gitops.argocd import ARGOCD_NAMESPACE, retirement_runbook_render
from gitops.values import apikey_secret_name, cluster_folder, namespace_name, release_name

_CHANGE_PAGE = "admin:clusters_cluster_change"
DECOMMISSION_PERMISSION = "clusters.decommission_cluster"


class ClusterNameForm(forms.Form):
    cluster_name = forms.CharField(label="Type the cluster's name to confirm", max_length=100, strip=True)

    def __init__(self, *args, cluster: Cluster, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        self.fields["cluster_name"].help_text = f"“{cluster}”: the client's name, a slash, the cluster's."

    def clean_cluster_name(self) -> str:
        typed = self.cleaned_data["cluster_name"]
        if typed != str(self.cluster):
            raise forms.ValidationError(f"That is not “{self.cluster}”: nothing was done.")
        return typed


def _runbook(cluster: Cluster) -> str:
    client = cluster.client.slug
    return retirement_runbook_render(
        removed=cluster.removed,
        namespace=namespace_name(client=client),
        release=release_name(client=client, cluster=cluster.slug),
        application=cluster_application(cluster=cluster),
        secret=apikey_secret_name(client=client, cluster=cluster.slug),
        argocd_namespace=settings.ARGOCD_APP_NAMESPACE or ARGOCD_NAMESPACE,
        namespace_shared=Cluster.objects.filter(client=cluster.client, removed_at=None)
        .exclude(pk=cluster.pk)
        .exists(),
    )


def _step_link(cluster: Cluster, step: str, label: str, what: str) -> str:
    url = reverse(f"admin:clusters_cluster_{step}", args=[cluster.pk])
    return format_html('<a class="deletelink" href="{}">{}</a> {}', url, label, what)


class ClusterDecommissionAdmin:
    """What ``ClusterAdmin`` adds: the two steps' pages, links to them, the runbook of each."""

    retirement_fields = ("decommissioned_at", "removed_at", "runbook")

    class Media:
        css = {"all": ["clusters/admin.css"]}  # the runbook's long lines wrap

    def get_urls(self):
        own = [
            path(
                f"<path:object_id>/{step}/",
                self.admin_site.admin_view(self._step_view(step)),
                name=f"clusters_cluster_{step}",
            )
            for step in ("decommission", "remove")
        ]
        return own + super().get_urls()

    def has_change_permission(self, request: HttpRequest, obj: Cluster | None = None) -> bool:
        # A decommissioned cluster's page is view-only: nothing about it changes any more.
        return not (obj is not None and obj.decommissioned) and super().has_change_permission(request, obj)

    def changeform_view(self, request: HttpRequest, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except PermissionDenied:
            cluster = self._decommissioned_meanwhile(request, object_id)
            if cluster is None:
                raise
        # A page opened before another operator decommissioned the cluster: not a missing permission.
        done = cluster_last_change(cluster=cluster, actions=[ClusterChange.Action.DECOMMISSION])
        when = change_made(done) if done is not None else f"at {cluster.decommissioned_at:%Y-%m-%d %H:%M} UTC"
        self.message_user(
            request, f"Cluster {cluster} was decommissioned {when}: nothing was saved.", messages.ERROR
        )
        return HttpResponseRedirect(reverse(_CHANGE_PAGE, args=[cluster.pk]))

    def _decommissioned_meanwhile(self, request: HttpRequest, object_id: str | None) -> Cluster | None:
        """The cluster of a save refused a permission, when what refused it is its decommissioning."""
        if request.method != "POST" or object_id is None:
            return None
        cluster = self.get_object(request, object_id)
        if cluster is None or not cluster.decommissioned:
            return None
        return cluster if super().has_change_permission(request, cluster) else None

    def may_retire(self, request: HttpRequest) -> bool:
        """Beyond changing clusters: an operator may change them and be denied this alone."""
        return request.user.has_perm("clusters.change_cluster") and request.user.has_perm(
            DECOMMISSION_PERMISSION
        )

    def _step_view(self, step: str) -> Callable[..., HttpResponse]:
        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            cluster = self.get_object(request, object_id)
            if cluster is None:
                raise Http404("No such cluster.")
            if not (self.has_view_permission(request, cluster) and self.may_retire(request)):
                raise PermissionDenied
            done = cluster.removed if step == "remove" else cluster.decommissioned
            if done or (step == "remove" and not cluster.decommissioned):
                self.message_user(
                    request, f"Nothing to do: {cluster} cannot be {_PAST[step]} now.", messages.WARNING
                )
                return HttpResponseRedirect(reverse(_CHANGE_PAGE, args=[cluster.pk]))
            if request.method == "GET" and (refusal := recent_sign_in_refusal(request)) is not None:
                self.message_user(request, refusal, messages.WARNING)  # said before the name is typed
            form = ClusterNameForm(request.POST if request.method == "POST" else None, cluster=cluster)
            if request.method == "POST" and form.is_valid():
                return self._step_take(request, cluster, step)
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"{step.capitalize()} {cluster}",
                "step": step,
                "cluster": cluster,
                "folder": cluster_folder(cluster.client.slug, cluster.slug),
                "form": form,
            }
            return TemplateResponse(request, "admin/clusters/cluster/retire.html", context)

        return view

    def _step_take(self, request: HttpRequest, cluster: Cluster, step: str) -> HttpResponse:
        if recent_sign_in_refusal(request) is not None:  # the page it goes back to says why, once
            return HttpResponseRedirect(request.get_full_path())
        service = cluster_remove if step == "remove" else cluster_decommission
        try:
            result = service(cluster=cluster, actor=request.user)
        except PortalError as error:
            self.message_user(request, f"Cluster {cluster}: {error.detail}", messages.ERROR)
            return HttpResponseRedirect(reverse(_CHANGE_PAGE, args=[cluster.pk]))
        self.message_user(request, *_outcome(result, step))
        return HttpResponseRedirect(reverse(_CHANGE_PAGE, args=[cluster.pk]))

    @admin.display(description="take out of service")
    def retire(self, cluster: Cluster) -> str:
        if cluster.decommissioned:
            return _step_link(
                cluster,
                "remove",
                "Remove from git…",
                "Once its data may go: Argo CD then removes its Application.",
            )
        return _step_link(
            cluster,
            "decommission",
            "Decommission this cluster…",
            "Stops it for good (zero replicas); its volumes keep the data. You are asked to confirm.",
        )

    @admin.display(description="replicas", ordering="replicas")
    def replicas_running(self, cluster: Cluster) -> str:
        # Git has zero for a decommissioned cluster; the row keeps what it ran, for its history.
        return f"0 (stopped; it ran {cluster.replicas})" if cluster.decommissioned else str(cluster.replicas)

    @admin.display(description="service")
    def service(self, cluster: Cluster) -> str:
        if cluster.removed:
            return "removed from git"
        return "decommissioned" if cluster.decommissioned else "in service"

    @admin.display(description="operator runbook")
    def runbook(self, cluster: Cluster) -> str:
        return format_html("<pre>{}</pre>", _runbook(cluster))


_PAST = {"decommission": "decommissioned", "remove": "removed from git"}


def _outcome(result: ClusterChangeResult, step: str) -> tuple[str, int]:
    cluster, pushed = result.cluster, result.change is not None and result.change.pushed
    what = "its folder is removed from git" if step == "remove" else "git now has zero replicas for it"
    later = "." if pushed else ", once the GitOps remote takes the commit (System status says why not yet)."
    return f"{_PAST[step].capitalize()}: {cluster}; {what}{later} The runbook is on this page.", (
        messages.SUCCESS if pushed else messages.WARNING
    )
