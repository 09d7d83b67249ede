"""Routes of the token service (mounted at the site root: /api/auth/... and /.well-known/...)."""

import uuid

from django.urls import path, register_converter

from accounts import views


class AnyCaseUUIDConverter:
    """A UUID in either case (RFC 9562 §4 reads them case-insensitively); Django's accepts lower case only."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def to_python(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_url(self, value: uuid.UUID) -> str:
        return str(value)


register_converter(AnyCaseUUIDConverter, "anycaseuuid")

urlpatterns = [
    path("api/auth/login", views.LoginView.as_view(), name="auth-login"),
    path("api/auth/google", views.GoogleSignInView.as_view(), name="auth-google"),
    path("api/auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("api/auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("api/auth/me", views.MeView.as_view(), name="auth-me"),
    path("api/auth/sessions", views.SessionListView.as_view(), name="auth-sessions"),
    path(
        "api/auth/sessions/<anycaseuuid:session_id>", views.SessionDetailView.as_view(), name="auth-session"
    ),
    path("api/auth/validate", views.ValidateView.as_view(), name="auth-validate"),
    path("api/auth/csrf", views.CsrfView.as_view(), name="auth-csrf"),
    path(".well-known/jwks.json", views.JwksView.as_view(), name="jwks"),
]
