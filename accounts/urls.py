"""Routes of the token service (mounted at the site root: /api/auth/... and /.well-known/...)."""

import uuid

from django.urls import path, register_converter

from accounts import password_reset_views, security_views, token_views, views


class AnyCaseUUIDConverter:
    """A UUID in either case (RFC 9562 §4 reads them case-insensitively); Django's accepts lower case only."""

    regex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

    def to_python(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_url(self, value: uuid.UUID) -> str:
        return str(value)


register_converter(AnyCaseUUIDConverter, "anycaseuuid")

urlpatterns = [
    # First: gateways ask it on every request they proxy (config/urls.py).
    path("api/auth/validate", views.ValidateView.as_view(), name="auth-validate"),
    path("api/auth/login", views.LoginView.as_view(), name="auth-login"),
    path("api/auth/google", views.GoogleSignInView.as_view(), name="auth-google"),
    path("api/auth/google/nonce", views.GoogleNonceView.as_view(), name="auth-google-nonce"),
    path("api/auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("api/auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("api/auth/me", views.MeView.as_view(), name="auth-me"),
    path("api/auth/sessions", views.SessionListView.as_view(), name="auth-sessions"),
    path(
        "api/auth/sessions/<anycaseuuid:session_id>", views.SessionDetailView.as_view(), name="auth-session"
    ),
    path("api/auth/tokens", token_views.AccessTokenListView.as_view(), name="auth-tokens"),
    path("api/auth/tokens/<int:token_id>", token_views.AccessTokenDetailView.as_view(), name="auth-token"),
    path("api/auth/csrf", views.CsrfView.as_view(), name="auth-csrf"),
    path(".well-known/jwks.json", views.JwksView.as_view(), name="jwks"),
    # Second factors, passkeys, re-authentication, passwords (accounts/security_views.py,
    # accounts/password_reset_views.py).
    path("api/auth/mfa", security_views.SecurityOverviewView.as_view(), name="auth-mfa"),
    path("api/auth/mfa/verify", security_views.MfaVerifyView.as_view(), name="auth-mfa-verify"),
    path("api/auth/mfa/options", security_views.MfaOptionsView.as_view(), name="auth-mfa-options"),
    path("api/auth/mfa/totp", security_views.TotpView.as_view(), name="auth-mfa-totp"),
    path("api/auth/mfa/totp/confirm", security_views.TotpConfirmView.as_view(), name="auth-mfa-totp-confirm"),
    path("api/auth/mfa/recovery-codes", security_views.RecoveryCodesView.as_view(), name="auth-mfa-recovery"),
    path("api/auth/mfa/passkeys", security_views.PasskeyListView.as_view(), name="auth-mfa-passkeys"),
    path(
        "api/auth/mfa/passkeys/options",
        security_views.PasskeyRegistrationOptionsView.as_view(),
        name="auth-mfa-passkeys-options",
    ),
    path(
        "api/auth/mfa/passkeys/<int:passkey_id>",
        security_views.PasskeyDetailView.as_view(),
        name="auth-mfa-passkey",
    ),
    path(
        "api/auth/passkey/options", security_views.PasskeyOptionsView.as_view(), name="auth-passkey-options"
    ),
    path("api/auth/passkey", security_views.PasskeySignInView.as_view(), name="auth-passkey"),
    path("api/auth/reauthenticate", security_views.ReauthenticateView.as_view(), name="auth-reauthenticate"),
    path(
        "api/auth/reauthenticate/options",
        security_views.ReauthenticationOptionsView.as_view(),
        name="auth-reauthenticate-options",
    ),
    path("api/auth/password", security_views.PasswordChangeView.as_view(), name="auth-password"),
    path(
        "api/auth/password/reset",
        password_reset_views.PasswordResetView.as_view(),
        name="auth-password-reset",
    ),
    path(
        "api/auth/password/reset/check",
        password_reset_views.PasswordResetCheckView.as_view(),
        name="auth-password-reset-check",
    ),
    path(
        "api/auth/password/reset/confirm",
        password_reset_views.PasswordResetConfirmView.as_view(),
        name="auth-password-reset-confirm",
    ),
    path("api/auth/admin-session", security_views.AdminSessionView.as_view(), name="auth-admin-session"),
]
