"""Shapes of the team API (members, invitations, audit, sign-in policy, tokens reaching a client)."""

from __future__ import annotations

from datetime import timedelta

from django.utils.functional import lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.scopes import UNMET_CODES, unmet_sentence
from accounts.serializers import (
    DELIVERY_COOKIE,
    TOKEN_DELIVERY_CHOICES,
    Base64PasswordField,
    CanonicalEmailField,
)
from clusters.models import ClientAuditEvent, Grant, SignInPolicy
from clusters.serializers import StrictBooleanField
from clusters.services.policy import JIT_ROLES, MAX_SESSION_LENGTH_MIN, session_length_problem
from config.field_alternatives import FieldAlternatives
from config.serializers import InputSerializer
from config.text import display_text_validator

ROLE_HELP = "`viewer` (view), `operator` (view, configure, credentials) or `admin` (all that, and members)."


class MemberSerializer(serializers.Serializer):
    """Renders a ``Grant``."""

    userId = serializers.IntegerField(source="user_id")
    email = serializers.EmailField(source="user.email")
    name = serializers.CharField(source="user.name")
    role = serializers.ChoiceField(choices=Grant.Role.values, help_text=ROLE_HELP)
    active = serializers.BooleanField(source="user.is_active", help_text="False: the account is disabled.")
    joinedAt = serializers.DateTimeField(source="created_at")


class MemberUpdateInputSerializer(InputSerializer):
    role = serializers.ChoiceField(choices=Grant.Role.values, help_text=ROLE_HELP)


class InvitationSerializer(serializers.Serializer):
    """Renders an ``Invitation`` (never its token)."""

    id = serializers.IntegerField()
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Grant.Role.values)
    state = serializers.ChoiceField(
        choices=["pending", "expired", "accepted", "revoked"],
        help_text="Only a `pending` invitation can be accepted or revoked; the list shows `pending` and `expired` ones.",
    )
    invitedBy = serializers.CharField(source="invited_by_email", help_text="Empty when unknown.")
    createdAt = serializers.DateTimeField(source="created_at")
    expiresAt = serializers.DateTimeField(source="expires_at")


class InvitationCreateInputSerializer(InputSerializer):
    email = CanonicalEmailField(max_length=254)
    role = serializers.ChoiceField(choices=Grant.Role.values, help_text=f"{ROLE_HELP} At most your own.")


class AuditEventSerializer(serializers.Serializer):
    """Renders a ``ClientAuditEvent``."""

    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    type = serializers.ChoiceField(choices=ClientAuditEvent.Type.values)
    actor = serializers.CharField(source="actor_email", help_text="Empty: the system (a Google sign-in).")
    target = serializers.CharField(source="target_email")
    cluster = serializers.CharField(
        help_text="The cluster whose API keys were read, or that was decommissioned; empty for other events."
    )
    ip = serializers.SerializerMethodField(
        help_text="Where the request came from, when recorded; null for the portal's operators, "
        "whose addresses are not the client's to see."
    )
    detail = serializers.SerializerMethodField(
        help_text="For `credentials_revealed`: the credential used (`session <id>` or "
        "`personal access token #<id> “<name>”`); empty for the portal's operators."
    )

    # An operator's internal address and session ids stay with the operators (the admin shows
    # them). Whether the actor was one is recorded with the event, so a later demotion or
    # deletion does not show them either.
    @extend_schema_field(serializers.IPAddressField(allow_null=True))
    def get_ip(self, event: ClientAuditEvent) -> str | None:
        return None if event.by_operator else event.ip

    @extend_schema_field(OpenApiTypes.STR)
    def get_detail(self, event: ClientAuditEvent) -> str:
        if event.by_operator and event.type == ClientAuditEvent.Type.CREDENTIALS_REVEALED:
            return ""
        return event.detail


_METHODS_HELP = "How a session must have begun: `password`, `google`, `passkey` (at least one)."
_DOMAIN_HELP = 'The Google Workspace (the ID token\'s `hd`) Google sign-ins must come from; "" for any.'
_LENGTH_HELP = (
    "Seconds after sign-in that a session keeps reaching the client, at least "
    f"{int(MAX_SESSION_LENGTH_MIN.total_seconds())} and at most JWT_SESSION_MAX; null: up to JWT_SESSION_MAX."
)
_LENGTH_PROBLEM = lazy(session_length_problem, str)()
_JIT_HELP = "Google sign-ins from googleDomain become members (not a member an admin removed)."


class SignInPolicyInputSerializer(InputSerializer):
    """A whole policy (PUT replaces it)."""

    allowedMethods = serializers.ListField(
        source="allowed_methods",
        child=serializers.ChoiceField(choices=SignInPolicy.Method.values),
        min_length=1,
        max_length=len(SignInPolicy.Method.values),
        error_messages={
            "min_length": "Choose at least one sign-in method.",
            "empty": "Choose at least one sign-in method.",
        },
        help_text=_METHODS_HELP,
    )
    googleDomain = serializers.CharField(
        source="google_domain", allow_blank=True, max_length=253, default="", help_text=_DOMAIN_HELP
    )
    mfaRequired = StrictBooleanField(source="mfa_required", default=False)
    # The upper bound that matters (JWT_SESSION_MAX) is the service's; this one keeps numbers sane.
    # Either bound refuses in the service's words (read when refusing: settings may change).
    maxSessionLength = serializers.IntegerField(
        source="max_session_length",
        allow_null=True,
        min_value=int(MAX_SESSION_LENGTH_MIN.total_seconds()),
        max_value=10 * 365 * 86400,
        error_messages={"min_value": _LENGTH_PROBLEM, "max_value": _LENGTH_PROBLEM},
        default=None,
        help_text=_LENGTH_HELP,
    )
    jitProvisioning = StrictBooleanField(source="jit_provisioning", default=False, help_text=_JIT_HELP)
    jitRole = serializers.ChoiceField(source="jit_role", choices=list(JIT_ROLES), default=Grant.Role.VIEWER)

    def validate(self, attrs: dict) -> dict:
        seconds = attrs["max_session_length"]
        attrs["allowed_methods"] = tuple(attrs["allowed_methods"])
        attrs["max_session_length"] = timedelta(seconds=seconds) if seconds is not None else None
        return attrs


class SignInPolicySerializer(serializers.Serializer):
    """Renders a ``SignInPolicy`` (the default one when the client has none)."""

    allowedMethods = serializers.ListField(
        source="allowed_methods",
        child=serializers.ChoiceField(choices=SignInPolicy.Method.values),
        help_text=_METHODS_HELP,
    )
    googleDomain = serializers.CharField(source="google_domain", help_text=_DOMAIN_HELP)
    mfaRequired = serializers.BooleanField(source="mfa_required")
    maxSessionLength = serializers.SerializerMethodField(help_text=_LENGTH_HELP)
    jitProvisioning = serializers.BooleanField(source="jit_provisioning", help_text=_JIT_HELP)
    jitRole = serializers.ChoiceField(source="jit_role", choices=list(JIT_ROLES))
    updatedAt = serializers.SerializerMethodField(help_text="null: never set (the default policy).")
    updatedBy = serializers.CharField(source="updated_by_email")

    def get_maxSessionLength(self, policy: SignInPolicy) -> int | None:
        return int(policy.max_session_length.total_seconds()) if policy.max_session_length else None

    def get_updatedAt(self, policy: SignInPolicy) -> str | None:
        return (
            None if policy._state.adding else serializers.DateTimeField().to_representation(policy.updated_at)
        )


class MemberCutSerializer(serializers.Serializer):
    email = serializers.EmailField(source="user.email")
    name = serializers.CharField(source="user.name")
    unmet = serializers.ListField(
        child=serializers.ChoiceField(choices=UNMET_CODES),
        help_text="What their sessions lack: `method`, `google_domain`, `second_factor`, `session_age`.",
    )
    detail = serializers.SerializerMethodField(help_text="The same, in words.")

    def get_detail(self, cut) -> str:
        return unmet_sentence(cut.unmet)


class SignInPolicyPreviewSerializer(serializers.Serializer):
    """What saving the policy would do (``PolicyImpact``); nothing is saved."""

    changes = serializers.ListField(
        child=serializers.CharField(), help_text="Each setting that would change; empty: nothing would."
    )
    membersToSignInAgain = serializers.ListField(
        source="members_cut",
        child=MemberCutSerializer(),
        help_text="Members whose current sessions would stop reaching the client until they sign in "
        "again as it asks.",
    )
    tokensLosingClient = serializers.IntegerField(
        source="tokens_cut", help_text="Members' live personal access tokens that would lose the client."
    )


class ClientAccessTokenSerializer(serializers.Serializer):
    """A member's personal access token that reaches this client (never its secret)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The token's first characters, e.g. qpt_1a2B3c4D.")
    owner = serializers.EmailField(source="user.email")
    permissions = serializers.ListField(
        source="permissions_now",
        child=serializers.CharField(),
        help_text="What it may do on this client now: what it was given, within its owner's role today.",
    )
    createdAt = serializers.DateTimeField(source="created_at")
    expiresAt = serializers.DateTimeField(source="expires_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)


# --- Invitations, for the invitee --------------------------------------------------------------


class InvitationTokenInputSerializer(InputSerializer):
    token = serializers.CharField(max_length=128, help_text="The token from the invitation's link.")


class InvitationPreviewSerializer(serializers.Serializer):
    client = serializers.CharField(source="client.slug")
    clientName = serializers.CharField(source="client.name")
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Grant.Role.values)
    invitedBy = serializers.CharField(source="invited_by_email")
    expiresAt = serializers.DateTimeField(source="expires_at")
    accountExists = serializers.BooleanField(
        source="account_exists", help_text="Sign in to accept; otherwise sign up."
    )
    signUpMethods = serializers.ListField(
        source="sign_up_terms.methods",
        child=serializers.ChoiceField(choices=["password", "google"]),
        help_text="How to create the account: only the ways that can meet the client's sign-in "
        "policy (`google` only where the portal has Google sign-in). Empty when none can (the "
        "client asks for Google sign-in, which the portal does not have; `signInRequirement` says "
        "to ask an operator).",
    )
    signInRequirement = serializers.CharField(
        source="sign_up_terms.requirement",
        help_text="What the client asks of its members' sign-ins, in a sentence; empty when nothing.",
    )


class InvitationAcceptedSerializer(serializers.Serializer):
    client = serializers.CharField(source="client.slug")
    role = serializers.ChoiceField(choices=Grant.Role.values, help_text="Your role now.")


class InvitationSignUpInputSerializer(InputSerializer):
    """Either a name and a password, or a Google ID token (``credential``)."""

    token = serializers.CharField(max_length=128)
    name = serializers.CharField(
        max_length=150, required=False, allow_blank=True, default="", validators=[display_text_validator]
    )
    password = Base64PasswordField(required=False)
    credential = serializers.CharField(max_length=8192, required=False, trim_whitespace=False)
    tokenDelivery = serializers.ChoiceField(
        choices=TOKEN_DELIVERY_CHOICES, default=DELIVERY_COOKIE, required=False
    )

    field_alternatives = FieldAlternatives(
        alternatives=(("password",), ("credential",)), message="Send a password, or a Google credential."
    )

    def validate(self, attrs: dict) -> dict:
        self.field_alternatives.check(self, attrs)
        return attrs
