"""The operators' way to decommission one cluster: a page that says what it does and asks for the
cluster's name typed out and a recent sign-in; then the runbook that stops the workload."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.admin_site import recent_sign_in_refusal
from clusters.deployments import cluster_application
from clusters.models import Cluster
from clusters.services import cluster_decommission
from config.errors import PortalError
from gitops.argocd import ARGOCD_NAMESPACE, decommission_runbook_render
from gitops.values import apikey_secret_name, cluster_folder, namespace_name, release_name

_CHANGE_PAGE = "admin:clusters_cluster_change"


class DecommissionForm(forms.Form):
    cluster_name = forms.CharField(label="Type the cluster's name to confirm", max_length=100, strip=True)

    def __init__(self, *args, cluster: Cluster, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        self.fields["cluster_name"].help_text = f"“{cluster}”: the client's name, a slash, the cluster's."

    def clean_cluster_name(self) -> str:
        typed = self.cleaned_data["cluster_name"]
        if typed != str(self.cluster):
            raise forms.ValidationError(f"That is not “{self.cluster}”: nothing was decommissioned.")
        return typed


def _runbook(cluster: Cluster) -> str:
    client = cluster.client.slug
    return decommission_runbook_render(
        namespace=namespace_name(client=client),
        release=release_name(client=client, cluster=cluster.slug),
        application=cluster_application(cluster=cluster),
        secret=apikey_secret_name(client=client, cluster=cluster.slug),
        argocd_namespace=settings.ARGOCD_APP_NAMESPACE or ARGOCD_NAMESPACE,
    )


class ClusterDecommissionAdmin:
    """What ``ClusterAdmin`` adds for decommissioning: the page, a link to it, the runbook after."""

    decommission_fields = ("decommissioned_at", "decommission_runbook")

    def get_urls(self):
        view = self.admin_site.admin_view(self.decommission_view)
        own = [path("<path:object_id>/decommission/", view, name="clusters_cluster_decommission")]
        return own + super().get_urls()

    def has_change_permission(self, request: HttpRequest, obj: Cluster | None = None) -> bool:
        # A decommissioned cluster's page is view-only: nothing about it changes any more.
        return not (obj is not None and obj.decommissioned) and super().has_change_permission(request, obj)

    def decommission_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        cluster = self.get_object(request, object_id)
        if cluster is None:
            raise Http404("No such cluster.")
        if not self.has_change_permission(request, cluster):
            if cluster.decommissioned:
                self.message_user(request, f"Nothing to do: {cluster} was decommissioned already.", messages.WARNING)
                return HttpResponseRedirect(reverse(_CHANGE_PAGE, args=[cluster.pk]))
            raise PermissionDenied
        form = DecommissionForm(request.POST if request.method == "POST" else None, cluster=cluster)
        if request.method == "POST" and form.is_valid():
            return self._decommission(request, cluster)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Decommission {cluster}",
            "cluster": cluster,
            "folder": cluster_folder(cluster.client.slug, cluster.slug),
            "form": form,
        }
        return TemplateResponse(request, "admin/clusters/cluster/decommission.html", context)

    def _decommission(self, request: HttpRequest, cluster: Cluster) -> HttpResponse:
        refusal = recent_sign_in_refusal(request)
        if refusal is not None:
            self.message_user(request, refusal, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        try:
            result = cluster_decommission(cluster=cluster, actor=request.user)
        except PortalError as error:
            self.message_user(request, f"{cluster}: {error.detail}", messages.ERROR)
            return HttpResponseRedirect(reverse(_CHANGE_PAGE, args=[cluster.pk]))
        pushed = result.change is not None and result.change.pushed
        self.message_user(
            request,
            f"Decommissioned {cluster}: its folder is removed from git"
            + (
                "."
                if pushed
                else ", once the GitOps remote takes the commit (System status says why not yet)."
            )
            + " Its pods and volumes stay until you delete them: the runbook is on this page.",
            messages.SUCCESS if pushed else messages.WARNING,
        )
        return HttpResponseRedirect(reverse(_CHANGE_PAGE, args=[cluster.pk]))

    @admin.display(description="decommission")
    def decommission(self, cluster: Cluster) -> str:
        return format_html(
            '<a class="deletelink" href="{}">Decommission this cluster…</a> Removes its folder from git '
            "(Argo CD then removes its Application); you are asked to confirm.",
            reverse("admin:clusters_cluster_decommission", args=[cluster.pk]),
        )

    @admin.display(description="operator runbook")
    def decommission_runbook(self, cluster: Cluster) -> str:
        return format_html("<pre>{}</pre>", _runbook(cluster))
