"""The browser app's shell (served at /; the app routes with the URL fragment)."""

from django.urls import path

from frontend import views

urlpatterns = [
    path("", views.app_shell, name="app"),
]
