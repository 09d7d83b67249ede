"""The admin's "Rotate API keys": a confirmation that rotates once, and new keys shown once.

The question page carries which keys each cluster had when it asked (``cluster_keys_version``),
and each rotation checks them on the row it locks: the same answer sent again (a reload, Back)
or a second operator's answer to the same question finds other keys and rotates nothing. The
rotating POST then redirects (POST/redirect/GET) to a page that shows the new keys: a reload of
it is a GET, which rotates nothing. The admin session keeps which clusters' keys to show (never
the keys), until shown; a cluster's keys are shown only while they are the ones rotated then.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers

from clusters.admin_delivery import change_made
from clusters.models import KEY_ACTIONS, Cluster
from clusters.selectors import cluster_credentials, cluster_keys_version, cluster_last_change
from config.errors import PortalError

_ROTATED = "clusters_rotated_keys"  # in the admin session: [[cluster id, keys version], ...]
_KEYS_PAGE = "clusters_cluster_rotated_keys"


def keys_version(cluster: Cluster) -> str:
    """What the question page records of each cluster (``confirmation_required``'s ``state``)."""
    return cluster_keys_version(cluster=cluster)


class KeysChanged(Exception):
    """The cluster's keys are not the ones the operator was asked about."""


def keys_as_confirmed(confirmed: dict[str, str], cluster: Cluster):  # noqa: ANN201 - a check
    """The check a rotation makes of the locked row: its keys are the ones the page asked about."""

    def check(locked: Cluster) -> None:
        if cluster_keys_version(cluster=locked) != confirmed.get(str(cluster.pk)):
            raise KeysChanged()

    return check


class RotatedKeysAdmin:
    """What ``ClusterAdmin`` adds for its rotation: the new keys' page, and what it says of refusals."""

    def get_urls(self):
        own = [
            path("rotated-keys/", self.admin_site.admin_view(self.rotated_keys_view), name=_KEYS_PAGE),
        ]
        return own + super().get_urls()

    def rotated_keys_show(self, request: HttpRequest, clusters: list[Cluster]) -> HttpResponseRedirect:
        """Redirect to the page that shows these clusters' new keys, once."""
        waiting = request.session.get(_ROTATED, [])
        request.session[_ROTATED] = waiting + [[c.pk, cluster_keys_version(cluster=c)] for c in clusters]
        return HttpResponseRedirect(reverse(f"admin:{_KEYS_PAGE}"))

    def rotated_keys_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        rotated = []
        for pk, version in request.session.pop(_ROTATED, []):
            cluster = Cluster.objects.select_related("client").filter(pk=pk).first()
            if cluster is None or cluster_keys_version(cluster=cluster) != version:
                self.message_user(
                    request,
                    f"Cluster {cluster or pk}: its API keys changed again since your rotation: not shown.",
                    messages.WARNING,
                )
                continue
            try:
                rotated.append((cluster, cluster_credentials(cluster=cluster)))
            except PortalError as error:
                self.message_user(request, f"Cluster {cluster}: {error.detail}", messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "New API keys",
            "rotated": rotated,
        }
        response = TemplateResponse(request, "admin/clusters/cluster/credentials_rotated.html", context)
        add_never_cache_headers(response)
        return response

    def rotation_refused(self, request: HttpRequest, cluster: Cluster, confirmed: dict[str, str]) -> None:
        """Say why ``cluster``'s keys were not rotated although the question was answered."""
        if str(cluster.pk) not in confirmed:  # "select all" took in a cluster added since
            said = "it was not among the clusters you were asked about"
        else:
            last = cluster_last_change(cluster=cluster, actions=KEY_ACTIONS)
            said = "its API keys changed since you were asked" + (
                f" (last {change_made(last)})" if last else ""
            )
        self.message_user(
            request,
            f"Cluster {cluster}: {said}: nothing was done. To rotate its keys now, select it in the list again.",
            messages.ERROR,
        )
