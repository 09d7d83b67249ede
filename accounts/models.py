from __future__ import annotations

import uuid

from asgiref.sync import sync_to_async
from django.contrib.auth import hashers
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.emails import email_canonical, email_canonical_or_none
from config.text import display_text_validator


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    @classmethod
    def normalize_email(cls, email: str | None) -> str:
        """The canonical form (accounts.emails); an address without one is left for clean() to refuse."""
        return email_canonical_or_none(email) or (email or "").strip()

    def get_by_natural_key(self, username: str | None) -> User:
        canonical = email_canonical_or_none(username)
        if canonical is None:
            raise self.model.DoesNotExist("No user has this email address.")
        return self.get(email=canonical)

    def _create_user(self, email: str, password: str | None, **extra_fields) -> User:
        if not email:
            raise ValueError("Users need an email address.")
        user = self.model(email=self.normalize_email(email), **extra_fields)
        user.set_password(password)
        user.full_clean()
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields) -> User:
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields) -> User:
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        extra_fields.setdefault("is_operator", True)
        if not extra_fields["is_staff"] or not extra_fields["is_superuser"]:
            raise ValueError("A superuser needs is_staff=True and is_superuser=True.")
        return self._create_user(email, password, **extra_fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an email address (unique, case-insensitive)."""

    email = models.EmailField(
        "email address",
        max_length=254,
        unique=True,
        error_messages={"unique": "A user with this email address already exists."},
    )
    name = models.CharField("display name", max_length=150, blank=True, validators=[display_text_validator])
    is_active = models.BooleanField(
        default=True, help_text="Unset to disable the account; this revokes every session."
    )
    is_staff = models.BooleanField(default=False, help_text="May sign in to the admin site.")
    is_operator = models.BooleanField(
        default=False,
        help_text="Operator: may act on every client (token scope “*”). Requires staff status.",
    )
    date_joined = models.DateTimeField(default=timezone.now)
    # Bumped whenever what a token says about the user changes (scopes, email, name), so the
    # next authenticated request re-issues the access token (see accounts.services).
    claims_version = models.PositiveIntegerField(default=0, editable=False)
    # Bumped by every new password (accounts.passwords), not when Django re-hashes the same one
    # at a sign-in: what a sign-in that checked the password compares under the row lock
    # (accounts.locks), so a change in between refuses it and a re-hash does not.
    password_version = models.PositiveIntegerField(default=0, editable=False)
    mfa_required = models.BooleanField(
        "second factor required",
        default=False,
        help_text="The user must enrol a second factor before using the portal (set by an operator).",
    )

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["name"]  # createsuperuser asks for it: the admin and the audit show it

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="accounts_user_email_ci_unique",
                violation_error_message="A user with this email address already exists.",
            ),
            models.CheckConstraint(
                condition=models.Q(is_operator=False) | models.Q(is_staff=True),
                name="accounts_user_operator_is_staff",
                violation_error_message="Operators must be staff.",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        try:
            self.email = email_canonical(self.email)
        except ValidationError as error:
            raise ValidationError({"email": error.messages}) from None

    def check_password(self, raw_password: str) -> bool:
        """Django's check, but the re-hash of a password stored in an older format (another
        hasher, fewer iterations) is written only over the very hash it checked. Django's own
        saves it unconditionally: a check that read the old password just before a change
        (accounts.passwords) would put the old password back over the new one."""
        checked = self.password

        def rehash(raw: str) -> None:
            rehashed = hashers.make_password(raw)
            # The UPDATE waits for a change under way (it holds the row: accounts.locks), then
            # finds the row no longer holds the hash checked, and writes nothing.
            if User.objects.filter(pk=self.pk, password=checked).update(password=rehashed):
                self.password = rehashed

        return hashers.check_password(raw_password, checked, rehash)

    async def acheck_password(self, raw_password: str) -> bool:
        """The same check for async code: Django's own would write its re-hash unconditionally."""
        return await sync_to_async(self.check_password)(raw_password)

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email


class SessionUser(User):
    """The signed-in user as their live session's cached claims describe them (no database read).

    What an authenticated API request sees as ``request.user``: enough for permissions, grants
    and the audit trail, without a query. It has no password and refuses to be saved: a service
    that changes a user reads the row from the database first.
    """

    # What the request's credential reaches (accounts.scopes.CredentialScope): the clients its
    # session's sign-in satisfies, or a personal access token's scopes. None: no narrowing.
    credential_scope = None

    class Meta:
        proxy = True

    def save(self, *args, **kwargs) -> None:
        raise TypeError("A SessionUser is a cached snapshot: read the user from the database to change it.")

    @classmethod
    def from_claims(cls, *, user_id: int, email: str, name: str, active: bool, staff: bool, operator: bool,
                    claims_version: int, credential_scope=None) -> SessionUser:  # fmt: skip
        user = cls(
            pk=user_id,
            email=email,
            name=name,
            is_active=active,
            is_staff=staff,
            is_operator=operator,
            claims_version=claims_version,
        )
        user._state.adding = False
        user._state.db = DEFAULT_DB_ALIAS
        user.credential_scope = credential_scope
        return user


class AuthMethod(models.TextChoices):
    """How a sign-in began (its first factor)."""

    PASSWORD = "password", "Password"
    GOOGLE = "google", "Google"
    PASSKEY = "passkey", "Passkey"


class SecondFactor(models.TextChoices):
    TOTP = "totp", "Authenticator app"
    RECOVERY = "recovery", "Recovery code"
    WEBAUTHN = "webauthn", "Passkey"


class SessionRevokedReason(models.TextChoices):
    LOGOUT = "logout", "Logged out"
    USER = "user", "Revoked by the user"
    OPERATOR = "operator", "Revoked by an operator"
    PASSWORD_CHANGE = "password_change", "Password changed"
    PASSWORD_RESET = "password_reset", "Password reset"
    DEACTIVATED = "deactivated", "Account deactivated"
    REFRESH_REUSE = "refresh_reuse", "Refresh token reused"
    IDLE = "idle", "Idle timeout"
    SECOND_FACTOR_ENROLLED = "second_factor_enrolled", "First second factor set up"


class Session(models.Model):
    """One sign-in: the refresh-token family and the durable record behind the idle-timeout cache."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sessions")
    method = models.CharField(max_length=16, choices=AuthMethod.choices)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    # Absolute end: created_at + JWT_SESSION_MAX. Rotation never moves it.
    expires_at = models.DateTimeField()
    user_agent = models.CharField(max_length=512, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, choices=SessionRevokedReason.choices, blank=True)
    # The refresh family: the one refresh token that may rotate now, the one it replaced and when.
    current_refresh_jti = models.CharField(max_length=64, db_index=True)
    # The current refresh token's claims: signing is deterministic, so within the reuse grace the
    # very same token can be handed to a second tab without storing the token itself.
    current_refresh_payload = models.JSONField(default=dict)
    previous_refresh_jti = models.CharField(max_length=64, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    # How the sign-in was proven (RFC 8176's idea, with this portal's method names), e.g.
    # ["password", "totp"]: what the sessions list shows and what policies read.
    amr = models.JSONField("authentication methods", default=list)
    # The last time the user proved who they are in this session (sign-in or re-authentication):
    # sensitive actions need it recent (REAUTHENTICATION_WINDOW).
    authenticated_at = models.DateTimeField(default=timezone.now)
    # The Google Workspace (the ID token's ``hd``) of a Google sign-in: clients may require one.
    google_domain = models.CharField("Google Workspace domain", max_length=253, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "revoked_at"], name="accounts_session_user_active"),
            # records_prune finds ended sessions by either end, a batch at a time.
            models.Index(fields=["expires_at"], name="accounts_session_expires"),
            models.Index(fields=["revoked_at"], name="accounts_session_revoked"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(method__in=AuthMethod.values), name="accounts_session_method_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(revoked_reason__in=["", *SessionRevokedReason.values]),
                name="accounts_session_revoked_reason_valid",
            ),
            models.CheckConstraint(
                condition=(models.Q(revoked_at__isnull=True) & models.Q(revoked_reason=""))
                | (models.Q(revoked_at__isnull=False) & ~models.Q(revoked_reason="")),
                name="accounts_session_revoked_has_reason",
            ),
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")),
                name="accounts_session_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.method}, {self.created_at:%Y-%m-%d %H:%M})"


class AuditEventType(models.TextChoices):
    LOGIN_SUCCEEDED = "login_succeeded", "Login succeeded"
    LOGIN_FAILED = "login_failed", "Login failed"
    LOGIN_THROTTLED = "login_throttled", "Login refused: too many attempts"
    REFRESH_REUSED = "refresh_reused", "Refresh token reused"
    LOGOUT = "logout", "Logout"
    SESSION_REVOKED = "session_revoked", "Session revoked"
    GOOGLE_LINKED = "google_linked", "Google account linked"
    GOOGLE_UNLINKED = "google_unlinked", "Google account unlinked"
    SECOND_FACTOR_ENROLLED = "factor_enrolled", "Second factor enrolled"
    SECOND_FACTOR_REMOVED = "factor_removed", "Second factor removed"
    SECOND_FACTOR_FAILED = "factor_failed", "Second factor failed"
    SECOND_FACTORS_RESET = "factors_reset", "Second factors reset by an operator"
    RECOVERY_CODE_USED = "recovery_code_used", "Recovery code used"
    RECOVERY_CODES_ISSUED = "recovery_codes_issued", "Recovery codes issued"
    REAUTHENTICATED = "reauthenticated", "Re-authenticated"
    PASSWORD_CHANGED = "password_changed", "Password changed"
    PASSWORD_RESET_REQUESTED = "password_reset_requested", "Password reset requested"
    PASSWORD_RESET = "password_reset", "Password reset"
    ACCESS_TOKEN_CREATED = "token_created", "Personal access token created"
    ACCESS_TOKEN_REVOKED = "token_revoked", "Personal access token revoked"
    EMAIL_CHANGED = "email_changed", "Email address changed by an operator"
    ACCOUNT_DEACTIVATED = "account_deactivated", "Account deactivated"
    ACCOUNT_REACTIVATED = "account_reactivated", "Account reactivated"
    ACCOUNT_DELETED = "account_deleted", "Account deleted"


class AuditEvent(models.Model):
    """What happened to whose credentials, kept for operators (read-only in the admin)."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    email = models.CharField("email tried", max_length=254, blank=True)
    type = models.CharField(max_length=32, choices=AuditEventType.choices)
    method = models.CharField(max_length=16, choices=AuthMethod.choices, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    # Not a foreign key: the trail outlives the sessions it mentions.
    session_id = models.UUIDField(null=True, blank=True, db_index=True)
    detail = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(type__in=AuditEventType.values), name="accounts_auditevent_type_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(method__in=["", *AuthMethod.values]),
                name="accounts_auditevent_method_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.type} {self.email or self.user_id or ''}"


class GoogleAccount(models.Model):
    """A Google account linked to a user: sign-in finds the user by Google's stable ``sub``.

    The email is kept as it was at link time, for operators: Google accounts can change their
    address, the ``sub`` never changes.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="google_accounts")
    # Google: "An identifier for the user, unique among all Google accounts and never reused",
    # at most 255 case-sensitive ASCII characters.
    sub = models.CharField("Google account ID", max_length=255)
    email = models.EmailField("email at link time", max_length=254)
    linked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-linked_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["sub"],
                name="accounts_googleaccount_sub_unique",
                violation_error_message="This Google account is already linked to a user.",
            ),
            models.CheckConstraint(condition=~models.Q(sub=""), name="accounts_googleaccount_sub_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.email} (Google {self.sub})"


# --- Second factors ------------------------------------------------------------------------


class TotpDevice(models.Model):
    """The user's authenticator app (RFC 6238): its shared secret, stored encrypted."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="totp_device")
    secret_encrypted = models.TextField(editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    # Null until the user proved the app works by entering a code: only then does it count.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The time step of the last code accepted: a code (and any older one) works once.
    last_used_step = models.BigIntegerField(default=0, editable=False)

    def __str__(self) -> str:
        return f"Authenticator app of {self.user}"


class RecoveryCode(models.Model):
    """A single-use code for when the authenticator is lost; only a keyed hash is stored."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Recovery code of {self.user} ({'used' if self.used_at else 'unused'})"


class Passkey(models.Model):
    """A WebAuthn credential: a second factor, and a first one where the browser offers it."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="passkeys")
    name = models.CharField(max_length=100, validators=[display_text_validator])
    credential_id = models.CharField(max_length=1400, unique=True)  # base64url, as browsers send it
    public_key = models.BinaryField()
    sign_count = models.BigIntegerField(default=0)
    transports = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Passkey {self.name!r} of {self.user}"


class ChallengePurpose(models.TextChoices):
    SECOND_FACTOR = "second_factor", "Second factor at sign-in"
    PASSKEY_SIGN_IN = "passkey_sign_in", "Passkey sign-in"
    PASSKEY_REGISTRATION = "passkey_registration", "Passkey registration"
    REAUTHENTICATION = "reauthentication", "Re-authentication with a passkey"


class SignInChallenge(models.Model):
    """A ceremony half done: the ``mfaToken`` of a sign-in that still needs its second factor,
    or the WebAuthn challenge of a passkey sign-in or registration. Single use, short-lived;
    only a hash of the token is stored."""

    token_hash = models.CharField(max_length=64, unique=True)
    purpose = models.CharField(max_length=32, choices=ChallengePurpose.choices)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    first_factor = models.CharField(max_length=16, choices=AuthMethod.choices, blank=True)
    google_domain = models.CharField(max_length=253, blank=True)  # of a Google first factor
    session_id = models.UUIDField(null=True, blank=True)  # a registration belongs to one session
    webauthn_challenge = models.BinaryField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(purpose__in=ChallengePurpose.values),
                name="accounts_challenge_purpose_valid",
            ),
        ]
        # Each new challenge deletes those whose time is up (second_factors.challenge_new).
        indexes = [models.Index(fields=["expires_at"], name="accounts_challenge_expires")]

    def __str__(self) -> str:
        return f"{self.purpose} challenge ({self.user or 'anyone'})"


# --- Personal access tokens ----------------------------------------------------------------


class PersonalAccessToken(models.Model):
    """A long-lived token for scripts and CI (``qpt_...``): only its SHA-256 is stored.

    It can do at most what its user can do at the time of each request, narrowed to its own
    ``scopes`` (``{"client1": ["view", "configure"]}``); see accounts.access_tokens.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100, validators=[display_text_validator])
    # The token's first characters, to recognise it in lists and find its row; not a secret.
    prefix = models.CharField(max_length=16, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(
        default=dict,
        help_text='Per client, what the token may do, for example {"client1": ["view", "configure"]}.',
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_from = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by_email = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "personal access token"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at")),
                name="accounts_accesstoken_expires_after_creation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.user})"
