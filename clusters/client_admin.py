"""Operators' admin for clients: a client's name and state, its sign-in policy (inline), and links
to its members, clusters and records (each list filtered to it), which would make its page grow
with the client if they were rows on it. Saves go through the services."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from clusters.models import Client, ClientAuditEvent, Cluster, ClusterChange, Grant, Invitation
from clusters.services import client_create, client_slug_check, client_update
from clusters.services.git_folders import TAKE_OVER_LABEL
from clusters.team_admin import SignInPolicyInline
from config.admin_access import LiveChoicesSearchAdmin, admin_may_view
from config.admin_errors import ServiceRefusalsAdmin
from config.admin_stale_edits import SeenValuesModelForm, row_locked_unchanged


class ClientAddForm(forms.ModelForm):
    take_over_git_folder = forms.BooleanField(
        required=False,
        label=TAKE_OVER_LABEL,
        help_text="Only where git already holds a folder of this name that no client of the portal owns "
        "(the System status page lists them): this client's client.yaml replaces its own; the cluster "
        "folders in it stay unknown until clusters of those names are created over them.",
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("slug"):
            client_slug_check(
                slug=cleaned["slug"], take_over_git_folder=cleaned.get("take_over_git_folder", False)
            )
        return cleaned


@admin.register(Client)
class ClientAdmin(LiveChoicesSearchAdmin, ServiceRefusalsAdmin):
    live_field = "active"  # searched for by the cluster, invitation and grant forms
    form = SeenValuesModelForm  # a page opened before another operator's save does not undo it
    add_form = ClientAddForm
    list_display = ("slug", "name", "active", "cluster_count", "created_at")
    list_filter = ("active",)
    search_fields = ("slug", "name")
    ordering = ("slug",)
    inlines = [SignInPolicyInline]

    def get_readonly_fields(self, request, obj=None):
        return ("slug", "created_at", "records") if obj else ()

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("slug", "name", "active", "take_over_git_folder")
        return ("slug", "name", "active", "created_at", "records")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_object(self, request, object_id, from_field=None):
        client = super().get_object(request, object_id, from_field)
        if client is not None:  # records() is given the client alone: whose page it is goes with it
            client.admin_may_view = lambda model: admin_may_view(request=request, model=model)
        return client

    @admin.display(description="members, clusters and records")
    def records(self, client: Client) -> str:
        lists = {
            Grant: f"{client.grants.count()} member(s)",
            Cluster: f"{client.cluster_total} cluster(s) in service",
            ClusterChange: "cluster changes",
            Invitation: "invitations",
            ClientAuditEvent: "team audit",
        }
        may_view = getattr(client, "admin_may_view", lambda model: False)
        shown = (
            format_html(
                '<a href="{}?client={}">{}</a>',
                reverse(f"admin:clusters_{model._meta.model_name}_changelist"),
                client.slug,
                text,
            )
            if may_view(model)
            else text  # a link to a list they may not open would be a dead end
            for model, text in lists.items()
        )
        return format_html_join(" · ", "{}", ((part,) for part in shown))

    def get_queryset(self, request):
        in_service = Q(clusters__decommissioned_at__isnull=True)
        return super().get_queryset(request).annotate(cluster_total=Count("clusters", filter=in_service))

    @admin.display(description="clusters", ordering="cluster_total")
    def cluster_count(self, client: Client) -> int:
        return client.cluster_total

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deactivate instead: deleting would drop grants behind the token service's back.
        return False

    def save_model(self, request, obj, form, change) -> None:
        if change:
            stored = row_locked_unchanged(form=form, row=obj)
            saved = client_update(client=stored, name=obj.name, active=obj.active, actor=request.user)
        else:
            take_over = form.cleaned_data.get("take_over_git_folder", False)
            saved = client_create(
                slug=obj.slug,
                name=obj.name,
                active=obj.active,
                actor=request.user,
                take_over_git_folder=take_over,
            )
        self.saved_adopt(obj, saved)
