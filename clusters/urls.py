"""Routes of the clusters API (mounted under /api/)."""

from django.urls import path

from clusters import views

_CLUSTER = "clients/<slug:client>/clusters/<slug:cluster>"

urlpatterns = [
    path("auth/permissions", views.PermissionsView.as_view(), name="auth-permissions"),
    path("clients", views.ClientListView.as_view(), name="client-list"),
    path("clients/<slug:client>/clusters", views.ClusterListView.as_view(), name="cluster-list"),
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
]
