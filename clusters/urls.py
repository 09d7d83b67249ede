"""Routes of the clusters API (mounted under /api/)."""

from django.urls import path, register_converter
from django.urls.converters import StringConverter

from clusters import team_views, views
from clusters.models import SLUG_PATTERN


class NameConverter(StringConverter):
    """A client's or cluster's name as the models allow it: anything else is no such page (404)."""

    regex = SLUG_PATTERN.removeprefix("^").removesuffix("$").replace("(", "(?:")


register_converter(NameConverter, "name")

_CLUSTER = "clients/<name:client>/clusters/<name:cluster>"
_CLIENT = "clients/<name:client>"

urlpatterns = [
    path("auth/permissions", views.PermissionsView.as_view(), name="auth-permissions"),
    path("clients", views.ClientListView.as_view(), name="client-list"),
    path("clusters", views.AllClustersView.as_view(), name="clusters-all"),
    path("clients/<name:client>/clusters", views.ClusterListView.as_view(), name="cluster-list"),
    path(_CLUSTER, views.ClusterDetailView.as_view(), name="cluster-detail"),
    path(f"{_CLUSTER}/credentials", views.ClusterCredentialsView.as_view(), name="cluster-credentials"),
    path(
        f"{_CLUSTER}/credentials/rotate",
        views.ClusterCredentialsRotateView.as_view(),
        name="cluster-credentials-rotate",
    ),
    path(
        f"{_CLUSTER}/credentials/rotate/finish",
        views.ClusterCredentialsRotationFinishView.as_view(),
        name="cluster-credentials-rotation-finish",
    ),
    path(
        f"{_CLUSTER}/storage-request",
        views.ClusterStorageRequestView.as_view(),
        name="cluster-storage-request",
    ),
    path(f"{_CLUSTER}/history", views.ClusterHistoryView.as_view(), name="cluster-history"),
    # A client's team (clusters/team_views.py).
    path(f"{_CLIENT}/members", team_views.MemberListView.as_view(), name="client-members"),
    path(f"{_CLIENT}/members/<int:user_id>", team_views.MemberDetailView.as_view(), name="client-member"),
    path(f"{_CLIENT}/invitations", team_views.InvitationListView.as_view(), name="client-invitations"),
    path(
        f"{_CLIENT}/invitations/<int:invitation_id>",
        team_views.InvitationDetailView.as_view(),
        name="client-invitation",
    ),
    path(f"{_CLIENT}/audit", team_views.AuditView.as_view(), name="client-audit"),
    path(f"{_CLIENT}/policy", team_views.SignInPolicyView.as_view(), name="client-policy"),
    path(
        f"{_CLIENT}/policy/preview",
        team_views.SignInPolicyPreviewView.as_view(),
        name="client-policy-preview",
    ),
    path(f"{_CLIENT}/tokens", team_views.ClientTokenListView.as_view(), name="client-tokens"),
    path(f"{_CLIENT}/tokens/<int:token_id>", team_views.ClientTokenDetailView.as_view(), name="client-token"),
    path("invitations/preview", team_views.InvitationPreviewView.as_view(), name="invitation-preview"),
    path("invitations/accept", team_views.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("invitations/sign-up", team_views.InvitationSignUpView.as_view(), name="invitation-sign-up"),
]
