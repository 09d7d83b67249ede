"""Routes of the operators' endpoints (mounted at the site root)."""

from django.urls import path

from operations import views

urlpatterns = [
    path("api/system/status", views.SystemStatusView.as_view(), name="system-status"),
    path("metrics", views.metrics, name="metrics"),
]
