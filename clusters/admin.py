"""Operators' admin: every write goes through clusters.services, as for the API."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.utils.html import format_html

from accounts.admin import ReadOnlyAdmin, recent_sign_in_required
from accounts.admin_site import confirmation_required, confirmed_states
from accounts.audit import RequestCredential
from accounts.authentication import request_origin
from clusters import client_admin, team_admin  # noqa: F401 - they register their own admin pages
from clusters.admin_credentials import KeysChanged, RotatedKeysAdmin, keys_as_confirmed, keys_version
from clusters.admin_decommission import ClusterDecommissionAdmin
from clusters.admin_delivery import delivery_note
from clusters.admin_filters import (
    ChangeDeliveryFilter,
    DecommissionedFilter,
    DeploymentStateFilter,
    client_filter,
)
from clusters.deployments import (
    application_ui_url,
    argocd_configured,
    cluster_application,
    cluster_deployment,
    clusters_deployments,
    latest_revisions,
)
from clusters.models import Client, Cluster, ClusterChange, StorageExpansion
from clusters.selectors import cluster_allowed_versions, cluster_latest_change
from clusters.services import (
    KeysShownTo,
    cluster_create,
    cluster_credentials_rotate,
    cluster_credentials_rotation_finish,
    cluster_slug_check,
    cluster_spec_validate,
    cluster_update,
    scale_down_problem,
    storage_expansion_cancel,
    storage_expansion_check,
    storage_expansion_complete,
)
from clusters.services.git_folders import TAKE_OVER_LABEL
from config.admin_access import PermittedSearchAdmin
from config.admin_errors import InputGuardAdmin, ServiceRefusalsAdmin
from config.admin_stale_edits import SeenValuesForm
from config.errors import PortalError
from gitops.argocd import storage_runbook_render
from gitops.values import namespace_name, release_name

_SPEC_FIELDS = ("replicas", "version", "storage_gi")
_ROTATE_QUESTION = "Each cluster gets new keys. Where its Qdrant takes one API key only, every application using the old keys fails as the pods restart."
_FINISH_ROTATION_QUESTION = (
    "Each cluster's old API key is removed for good: every application still using it fails."
)
_STORAGE_DONE_QUESTION = "Each new size is committed to git and can never shrink: only once its volumes are expanded (the runbook)."


# --- Clusters -----------------------------------------------------------------------------------


class ClusterAdminForm(SeenValuesForm, forms.ModelForm):
    version = forms.ChoiceField()
    confirm_scale_down = forms.BooleanField(
        required=False,
        label="Confirm scale-down",
        help_text="Needed for fewer replicas: Qdrant does not move shards off a peer that disappears "
        "(a shard whose only copy is on it is lost), nor forget it (remove it from the Qdrant cluster "
        "first: a peer gone but not removed still votes, and without a majority Qdrant makes no "
        "cluster-wide change).",
    )

    take_over_git_folder = forms.BooleanField(
        required=False,
        label=TAKE_OVER_LABEL,
        help_text="Only where git already holds a folder of this name that no cluster of the portal owns "
        "(the System status page lists them): this cluster is deployed from it, with its own values and new "
        "API keys, and the volumes of the cluster that ran there, with their data.",
    )

    class Meta:
        model = Cluster
        fields = ("client", "slug", *_SPEC_FIELDS)
        help_texts = {
            "storage_gi": "On an existing cluster a bigger size becomes a storage expansion request "
            "that an operator carries out (Storage expansions).",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            versions = cluster_allowed_versions(cluster=self.instance)  # upgrades only, one minor at a time
        else:
            versions = list(settings.QDRANT_VERSIONS)
            self.initial.setdefault("version", settings.QDRANT_DEFAULT_VERSION)
            self.initial.setdefault("storage_gi", settings.STORAGE_GI_DEFAULT)
            self.fields["client"].queryset = Client.objects.filter(active=True)  # else seen by nobody
        self.fields["version"].choices = [(v, v) for v in versions]
        # The service's bounds in the browser too (a decommissioned cluster's form has neither field).
        if "replicas" in self.fields:
            self.fields["replicas"].widget.attrs.update(min=settings.REPLICAS_MIN, max=settings.REPLICAS_MAX)
            self.fields["storage_gi"].widget.attrs.update(min=1, max=settings.STORAGE_GI_MAX)

    def spec_changes(self) -> dict:
        """The desired-state values to hand to the service: all of them on create, the edited ones on change."""
        return {
            field: self.cleaned_data[field]
            for field in _SPEC_FIELDS
            if field in self.cleaned_data and (not self.instance.pk or field in self.changed_data)
        }

    def clean(self):
        cleaned = super().clean()
        # clean() runs before the instance takes the new values: the instance is the stored cluster.
        current = self.instance if self.instance.pk else None
        changes = self.spec_changes()
        cluster_spec_validate(**changes, current=current)
        if current is None and cleaned.get("client") and cleaned.get("slug"):
            take_over = cleaned.get("take_over_git_folder", False)
            cluster_slug_check(client=cleaned["client"], slug=cleaned["slug"], take_over_git_folder=take_over)
        if current is not None and "storage_gi" in changes:
            try:
                storage_expansion_check(cluster=current, storage_gi=changes["storage_gi"])
            except PortalError as error:
                self.add_error("storage_gi", error.detail)
        if current is not None and "replicas" in changes and not cleaned.get("confirm_scale_down"):
            tick = "tick “Confirm scale-down” and save again"
            problem = scale_down_problem(cluster=current, replicas=changes["replicas"], confirm_by=tick)
            if problem:
                self.add_error("confirm_scale_down", problem)
        return cleaned


# Where the changelist leaves each row's deployment (None: Argo CD is not configured).
_PAGE_DEPLOYMENT = "_admin_page_deployment"
_NOT_LOOKED_UP = object()


@admin.register(Cluster)
class ClusterAdmin(PermittedSearchAdmin, RotatedKeysAdmin, ClusterDecommissionAdmin, ServiceRefusalsAdmin):
    form = ClusterAdminForm
    page_transaction = False  # the services commit, then write git: a conflict refuses the save
    list_display = (
        "__str__",
        "client",
        "replicas_running",
        "version",
        "storage_gi",
        "deployment_state",
        "service",
        "updated_at",
    )
    list_filter = (DecommissionedFilter, DeploymentStateFilter, "version", client_filter("client"))
    list_select_related = ("client",)
    search_fields = ("slug", "client__slug", "client__name")
    autocomplete_fields = ("client",)  # a search, not a list of every client
    actions = ["rotate_credentials", "finish_key_rotation"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("client", "slug", *_SPEC_FIELDS, "take_over_git_folder")
        retire = ("retire",) if self.may_retire(request) and not obj.removed else ()
        if obj.decommissioned:
            return (
                "client",
                "slug",
                "replicas_running",
                *_SPEC_FIELDS[1:],
                "deployment",
                *self.retirement_fields,
                *retire,
                "created_at",
            )
        return (
            "client",
            "slug",
            *_SPEC_FIELDS,
            "confirm_scale_down",
            "storage_request",
            "deployment",
            "api_keys",
            "created_at",
            "updated_at",
            *retire,
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        shown = ("storage_request", "deployment", "api_keys", "retire", *self.retirement_fields)
        return ("client", "slug", "replicas_running", *shown, "created_at", "updated_at")

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        if argocd_configured():
            # The page's deployments at once: one query for the rows' latest changes and one
            # question to Argo CD, however many rows. The rows are the page's cached queryset,
            # the very objects the list renders, so deployment_state finds them there.
            rows = list(changelist.result_list)
            revisions = latest_revisions(rows)
            found = clusters_deployments(clusters=[(row, revisions.get(row.pk)) for row in rows])
            for row in rows:
                setattr(row, _PAGE_DEPLOYMENT, found[row.pk])
        return changelist

    @admin.display(description="deployment")
    def deployment_state(self, cluster: Cluster) -> str:
        found = getattr(cluster, _PAGE_DEPLOYMENT, _NOT_LOOKED_UP)
        if found is _NOT_LOOKED_UP and not argocd_configured():
            return "—"  # nothing to read back: no query per row for it
        if found is _NOT_LOOKED_UP:
            found = cluster_deployment(cluster=cluster, revision=cluster_latest_change(cluster=cluster))
        if found is None:
            return "—"
        # Why, one keyboard press away (a title tooltip is for the mouse only).
        return format_html(
            '<details data-state="{}"><summary>{}</summary><small>{}</small></details>',
            found.state,
            found.state,
            found.message,
        )

    @admin.display(description="deployment (Argo CD)")
    def deployment(self, cluster: Cluster) -> str:
        found = cluster_deployment(cluster=cluster, revision=cluster_latest_change(cluster=cluster))
        if found is None:
            return "Argo CD is not configured (ARGOCD_URL): the portal does not read deployments back."
        return format_html(
            "<strong>{}</strong>: {}<br>committed {}, Argo CD at {} (sync {}, health {}), checked {}<br>"
            '<a href="{}" target="_blank" rel="noopener noreferrer">{} in Argo CD</a>',
            found.state,
            found.message,
            (found.committed_revision or "—")[:12],
            (found.deployed_revision or "—")[:12],
            found.sync or "—",
            found.health or "—",
            f"{found.checked_at:%Y-%m-%d %H:%M:%S} UTC" if found.checked_at else "—",
            application_ui_url(cluster=cluster),
            found.application,
        )

    @admin.display(description="storage request")
    def storage_request(self, cluster: Cluster) -> str:
        pending = cluster.storage_expansions.filter(state=StorageExpansion.State.PENDING).first()
        if pending is None:
            return "None waiting."
        return f"{pending.from_gi} GiB → {pending.requested_gi} GiB, waiting for an operator (Storage expansions)."

    @admin.display(description="API keys")
    def api_keys(self, cluster: Cluster) -> str:
        text = "Stored encrypted. To issue new keys (and see them once), use the “Rotate API keys” action."
        if cluster.rotation_in_progress:
            text += (
                f" A rotation is in progress: both API keys are accepted until {cluster.rotation_finishes_at:%Y-%m-%d %H:%M} UTC"
                " or until someone finishes it (“Finish key rotation”)."
            )
        return text

    def has_delete_permission(self, request, obj=None) -> bool:
        # Removing a cluster is a GitOps change of its own, not a row deletion.
        return False

    def save_model(self, request, obj, form, change) -> None:
        if change:
            stored = Cluster.objects.select_related("client").get(pk=obj.pk)
            result = cluster_update(
                cluster=stored,
                actor=request.user,
                confirm=form.cleaned_data.get("confirm_scale_down", False),
                check=lambda locked: form.stale_refuse(stored=locked),  # another operator's save meanwhile
                **form.spec_changes(),
            )
            if result.storage_expansion_created:
                self.message_user(
                    request,
                    f"Storage request {result.storage_expansion}: carry it out from Storage expansions.",
                )
        else:
            result = cluster_create(
                client=form.cleaned_data["client"],
                slug=form.cleaned_data["slug"],
                actor=request.user,
                take_over_git_folder=form.cleaned_data.get("take_over_git_folder", False),
                **form.spec_changes(),
            )
        if note := delivery_note(result):
            self.message_user(request, f"Cluster {result.cluster}:{note}", messages.WARNING)
        self.saved_adopt(obj, result.cluster)

    @admin.action(description="Rotate API keys (shows the new keys once)", permissions=["change"])
    @recent_sign_in_required
    @confirmation_required(_ROTATE_QUESTION, "Yes, rotate their keys", state=keys_version)
    def rotate_credentials(self, request, queryset):
        confirmed, rotated = confirmed_states(request), []
        for cluster in queryset.select_related("client"):
            try:
                # Shown on the page: on the client's audit trail like any read of the keys.
                shown_to = KeysShownTo(
                    actor=request.user, credential=RequestCredential(), origin=request_origin(request)
                )
                check = keys_as_confirmed(confirmed, cluster)  # a confirmation rotates once
                result = cluster_credentials_rotate(cluster=cluster, shown_to=shown_to, check=check)
            except KeysChanged:
                self.rotation_refused(request, cluster, confirmed)
                continue
            except PortalError as error:
                self.message_user(request, f"Cluster {cluster}: {error.detail}", messages.ERROR)
                continue
            if note := delivery_note(result):  # the grace period runs, but the cluster lacks the keys
                self.message_user(request, f"Cluster {result.cluster}:{note}", messages.WARNING)
            rotated.append(result.cluster)
        return self.rotated_keys_show(request, rotated) if rotated else None

    @admin.action(
        description="Finish key rotation (the new API key becomes the only one)", permissions=["change"]
    )
    @recent_sign_in_required
    @confirmation_required(_FINISH_ROTATION_QUESTION, "Yes, remove the old keys")
    def finish_key_rotation(self, request, queryset):
        for cluster in queryset.select_related("client"):
            try:
                result = cluster_credentials_rotation_finish(
                    cluster=cluster, actor=request.user, shown_to=None
                )
            except PortalError as error:
                self.message_user(request, f"Cluster {cluster}: {error.detail}", messages.ERROR)
            else:
                note = delivery_note(result)
                self.message_user(
                    request,
                    f"Cluster {cluster}: key rotation finished; the old API key is removed.{note}",
                    messages.WARNING if note else messages.SUCCESS,
                )


# --- Storage expansions -------------------------------------------------------------------------


@admin.register(StorageExpansion)
class StorageExpansionAdmin(InputGuardAdmin):
    """Requests for more storage: an operator grows the volumes, then marks the request done here."""

    Media = ClusterDecommissionAdmin.Media  # the runbook's long lines wrap
    list_display = (
        "cluster",
        "from_gi",
        "requested_gi",
        "state",
        "requested_by_email",
        "requested_at",
        "resolved_at",
    )
    list_filter = ("state",)
    list_select_related = ("cluster__client",)
    search_fields = ("cluster__slug", "cluster__client__slug", "requested_by_email")
    actions = ["mark_done", "cancel"]
    fields = (
        "cluster",
        "from_gi",
        "requested_gi",
        "state",
        "requested_by_email",
        "requested_at",
        "resolved_by_email",
        "resolved_at",
        "runbook",
    )
    readonly_fields = fields

    @admin.display(description="operator runbook")
    def runbook(self, expansion: StorageExpansion) -> str:
        cluster = expansion.cluster
        client = cluster.client.slug
        commands = storage_runbook_render(
            namespace=namespace_name(client=client),
            statefulset=release_name(client=client, cluster=cluster.slug),
            application=cluster_application(cluster=cluster),
            size=f"{expansion.requested_gi}Gi",
        )
        return format_html("<pre>{}</pre>", commands)

    def has_add_permission(self, request) -> bool:
        return False  # requests come from the API or the cluster's page, through the services

    def has_change_permission(self, request, obj=None) -> bool:
        # The list's actions need the change permission; a request itself is never edited.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Mark storage expansion done (commits the new size)", permissions=["change"])
    @confirmation_required(_STORAGE_DONE_QUESTION, "Yes, record the new sizes")
    def mark_done(self, request, queryset):
        for expansion in queryset.select_related("cluster__client"):
            try:
                result = storage_expansion_complete(expansion=expansion, actor=request.user)
            except PortalError as error:
                self.message_user(request, f"Cluster {expansion.cluster}: {error.detail}", messages.ERROR)
            else:
                note = delivery_note(result)
                self.message_user(
                    request,
                    f"Cluster {expansion.cluster}: {expansion.requested_gi} GiB recorded and committed.{note} Now "
                    "re-create its StatefulSet with --cascade=orphan (see the runbook).",
                    messages.WARNING if note else messages.SUCCESS,
                )

    @admin.action(description="Cancel storage expansion", permissions=["change"])
    def cancel(self, request, queryset):
        for expansion in queryset.select_related("cluster__client"):
            if expansion.state != StorageExpansion.State.PENDING:
                self.message_user(request, f"Nothing to cancel for {expansion}.", messages.WARNING)
                continue
            try:  # someone else may have finished or cancelled it since the list was shown
                storage_expansion_cancel(cluster=expansion.cluster, actor=request.user)
            except PortalError as error:
                self.message_user(request, f"Cluster {expansion.cluster}: {error.detail}", messages.ERROR)
                continue
            self.message_user(request, f"Cluster {expansion.cluster}: storage request cancelled.")


# --- History ------------------------------------------------------------------------------------


@admin.register(ClusterChange)
class ClusterChangeAdmin(ReadOnlyAdmin):
    """The change history: read-only, written only by the services and GitOps delivery."""

    list_display = ("created_at", "cluster", "action", "actor_email", "message", "short_commit", "delivered")
    # "What happened to our clusters last night?": one client's changes, by time.
    list_filter = (
        client_filter("cluster__client"),
        "action",
        ChangeDeliveryFilter,
        ("created_at", admin.DateFieldListFilter),
    )
    list_select_related = ("cluster__client",)
    # "Which changes did that token make, and from where?"
    search_fields = (
        "message",
        "actor_email",
        "commit",
        "cluster__slug",
        "cluster__client__slug",
        "credential",
        "ip",
    )

    @admin.display(description="commit", ordering="commit")
    def short_commit(self, change: ClusterChange) -> str:
        return change.commit[:12]

    @admin.display(description="pushed", boolean=True, ordering="pushed")
    def delivered(self, change: ClusterChange) -> bool | None:
        return change.delivered  # None (shown as such): a storage request has nothing to push
