"""Routes of the token service (mounted at the site root: /api/auth/... and /.well-known/...)."""

from django.urls import path

from accounts import views

urlpatterns = [
    path("api/auth/login", views.LoginView.as_view(), name="auth-login"),
    path("api/auth/google", views.GoogleSignInView.as_view(), name="auth-google"),
    path("api/auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("api/auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("api/auth/me", views.MeView.as_view(), name="auth-me"),
    path("api/auth/sessions", views.SessionListView.as_view(), name="auth-sessions"),
    path("api/auth/sessions/<uuid:session_id>", views.SessionDetailView.as_view(), name="auth-session"),
    path("api/auth/validate", views.ValidateView.as_view(), name="auth-validate"),
    path("api/auth/csrf", views.CsrfView.as_view(), name="auth-csrf"),
    path(".well-known/jwks.json", views.JwksView.as_view(), name="jwks"),
]
