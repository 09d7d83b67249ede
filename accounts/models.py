from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    @classmethod
    def normalize_email(cls, email: str | None) -> str:
        # The whole address is lower-cased: the login is case-insensitive end to end.
        return (email or "").strip().lower()

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=self.normalize_email(username))

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
    name = models.CharField("display name", max_length=150, blank=True)
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

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

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
        self.email = User.objects.normalize_email(self.email)

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email
