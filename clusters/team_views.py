"""The team API: a client's members, invitations, audit trail, sign-in policy and the personal access
tokens that reach it (``/api/clients/{client}/...``), and accepting an invitation (``/api/invitations/...``).

Managing a team needs the ``members`` permission (the ``admin`` role; operator staff everywhere)
and a signed-in session: personal access tokens are refused here (``pat_not_allowed``).
"""

from __future__ import annotations

from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import request_credential, request_origin
from accounts.google_nonce import google_nonce_clear, google_nonce_from_request
from accounts.models import User
from accounts.scopes import SignInFacts
from accounts.throttles import PublicIPThrottle, UserThrottle
from accounts.views import SIGN_IN_ERRORS, SIGN_IN_RESPONSE, SignInAPIView, sign_in_step_response
from clusters import services, team_selectors
from clusters.permissions import PERMISSION_AUDIT, PERMISSION_MEMBERS, PERMISSION_VIEW
from clusters.serializers import PageQuerySerializer
from clusters.team_serializers import (
    AuditEventSerializer,
    ClientAccessTokenSerializer,
    InvitationAcceptedSerializer,
    InvitationCreateInputSerializer,
    InvitationPreviewSerializer,
    InvitationSerializer,
    InvitationSignUpInputSerializer,
    InvitationTokenInputSerializer,
    MemberSerializer,
    MemberUpdateInputSerializer,
    SignInPolicyInputSerializer,
    SignInPolicyPreviewSerializer,
    SignInPolicySerializer,
)
from clusters.views import CLIENT_ERRORS, ClientAPIView
from config import errors
from config.api import APIView
from config.openapi import AUTHENTICATION_ERRORS, error_responses

TEAM_ERRORS = (*CLIENT_ERRORS, errors.PatNotAllowed, errors.StepUpRequired)
_NOTES = {
    "permission_denied": "The client is outside your grants (whether or not it exists), or your role "
    "is not admin.",
    "not_found": "No such member, invitation or token on this client.",
}


class TeamAPIView(ClientAPIView):
    """Needs a signed-in session with the ``members`` permission on the client."""

    accepts_personal_access_tokens = False
    required_permission = PERMISSION_MEMBERS


class MemberListView(TeamAPIView):
    @extend_schema(
        operation_id="clients_members_list",
        responses={200: MemberSerializer(many=True), **error_responses(*TEAM_ERRORS, notes=_NOTES)},
        description="The client's members, admins first.",
    )
    def get(self, request: Request, client: str) -> Response:
        return Response(
            MemberSerializer(team_selectors.client_members(client=self.client_get()), many=True).data
        )


class MemberDetailView(TeamAPIView):
    @property
    def required_permission(self) -> str:
        # Leaving is every member's own choice: removing oneself takes only being a member.
        leaving = self.request.method == "DELETE" and self.kwargs.get("user_id") == self.request.user.pk
        return PERMISSION_VIEW if leaving else PERMISSION_MEMBERS

    @extend_schema(
        operation_id="clients_members_update",
        request=MemberUpdateInputSerializer,
        responses={
            200: MemberSerializer,
            **error_responses(
                errors.InvalidRequest, *TEAM_ERRORS, errors.RoleEscalation, errors.LastAdmin, notes=_NOTES
            ),
        },
        description="Change a member's role: never above your own, and the last admin stays an admin. "
        "Their sessions and tokens get the new permissions at once.",
    )
    def patch(self, request: Request, client: str, user_id: int) -> Response:
        target = self.client_get()
        serializer = MemberUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grant = services.member_role_change(
            client=target, user_id=user_id, role=serializer.validated_data["role"], actor=request.user
        )
        return Response(MemberSerializer(grant).data)

    @extend_schema(
        operation_id="clients_members_remove",
        responses={
            204: None,
            **error_responses(*TEAM_ERRORS, errors.RoleEscalation, errors.LastAdmin, notes=_NOTES),
        },
        description="Remove a member: at once, their sessions, `/api/auth/validate` and personal access "
        "tokens lose the client (the tokens for good). The last admin cannot be removed. Every member "
        "may remove themselves (leave the client) whatever their role; removing someone else takes the "
        "admin role.",
    )
    def delete(self, request: Request, client: str, user_id: int) -> Response:
        services.member_remove(client=self.client_get(), user_id=user_id, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationThrottle(UserThrottle):
    """Invitations per sender: each one emails an address the sender chose, again and again if
    nothing stopped it (a new invitation replaces the open one and sends another email)."""

    scope = "invitation"
    setting_name = "INVITATION_THROTTLE"


class InvitationListView(TeamAPIView):
    def get_throttles(self) -> list:
        return [InvitationThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        operation_id="clients_invitations_list",
        responses={200: InvitationSerializer(many=True), **error_responses(*TEAM_ERRORS, notes=_NOTES)},
        description="Invitations neither accepted nor revoked (expired ones say so), newest first.",
    )
    def get(self, request: Request, client: str) -> Response:
        invitations = team_selectors.client_invitations(client=self.client_get())
        return Response(InvitationSerializer(invitations, many=True).data)

    @extend_schema(
        operation_id="clients_invitations_create",
        request=InvitationCreateInputSerializer,
        responses={
            201: InvitationSerializer,
            **error_responses(
                errors.InvalidRequest,
                *TEAM_ERRORS,
                errors.RoleEscalation,
                errors.AlreadyMember,
                errors.Throttled,
                errors.EmailUnavailable,
                notes=_NOTES,
            ),
        },
        description="Email an invitation with a link that works once, for INVITATION_TTL (7 days). "
        "An open invitation to the same address is replaced. Each user sends at most "
        "INVITATION_THROTTLE (50 an hour): 429 `throttled` with Retry-After beyond.",
    )
    def post(self, request: Request, client: str) -> Response:
        target = self.client_get()
        serializer = InvitationCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = services.invitation_create(
            client=target,
            actor=request.user,
            session_id=request_credential(request).session_id,
            **serializer.validated_data,
        )
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailView(TeamAPIView):
    @extend_schema(
        operation_id="clients_invitations_retrieve",
        responses={200: InvitationSerializer, **error_responses(*TEAM_ERRORS, notes=_NOTES)},
    )
    def get(self, request: Request, client: str, invitation_id: int) -> Response:
        invitation = team_selectors.client_invitation(client=self.client_get(), invitation_id=invitation_id)
        return Response(InvitationSerializer(invitation).data)

    @extend_schema(
        operation_id="clients_invitations_revoke",
        responses={
            204: None,
            **error_responses(*TEAM_ERRORS, errors.RoleEscalation, errors.InvitationNotPending, notes=_NOTES),
        },
        description="Revoke a pending invitation: its link stops working.",
    )
    def delete(self, request: Request, client: str, invitation_id: int) -> Response:
        services.invitation_revoke(client=self.client_get(), invitation_id=invitation_id, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditView(TeamAPIView):
    # Read-only, and what a SIEM export needs: a token given ``audit`` may read it.
    accepts_personal_access_tokens = True
    required_permission = PERMISSION_AUDIT

    @extend_schema(
        operation_id="clients_audit_list",
        parameters=[PageQuerySerializer],
        responses={
            200: AuditEventSerializer(many=True),
            **error_responses(
                errors.InvalidRequest,
                *CLIENT_ERRORS,
                errors.StepUpRequired,
                notes={**_NOTES, "not_found": "A client name that is not a slug."},
            ),
        },
        description="Who changed the team or the sign-in policy, who read a cluster's API keys "
        "(`credentials_revealed`) and which clusters were decommissioned, newest first, "
        f"{team_selectors.AUDIT_PAGE_SIZE} at a time (`?before=<the last id>` for the next page). "
        "Needs the `audit` permission: the admin role, or a personal access token given it.",
    )
    def get(self, request: Request, client: str) -> Response:
        target = self.client_get()
        query = PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        events = team_selectors.client_audit(client=target, before=query.validated_data.get("before"))
        return Response(AuditEventSerializer(events, many=True).data)


def _acting_facts(request: Request) -> SignInFacts | None:
    """How the acting session signed in, which a policy must admit (None: operators, whom none binds)."""
    return None if request.auth.scope.permissions is None else request.auth.session.facts


class SignInPolicyView(TeamAPIView):
    required_permission = {"GET": PERMISSION_VIEW, "PUT": PERMISSION_MEMBERS}

    @extend_schema(
        operation_id="clients_policy_retrieve",
        responses={200: SignInPolicySerializer, **error_responses(*TEAM_ERRORS, notes=_NOTES)},
        description="How members must sign in for a session to reach the client (every member may read it).",
    )
    def get(self, request: Request, client: str) -> Response:
        return Response(
            SignInPolicySerializer(team_selectors.client_sign_in_policy(client=self.client_get())).data
        )

    @extend_schema(
        operation_id="clients_policy_update",
        request=SignInPolicyInputSerializer,
        responses={
            200: SignInPolicySerializer,
            **error_responses(errors.InvalidRequest, *TEAM_ERRORS, notes=_NOTES),
        },
        description="Replace the policy. It applies to every member's next request; a policy your own "
        "session does not satisfy is refused (400, `fields.policy`), so you cannot lock yourself out.",
    )
    def put(self, request: Request, client: str) -> Response:
        target = self.client_get()
        serializer = SignInPolicyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy = services.sign_in_policy_set(
            client=target,
            wanted=services.PolicyInput(**serializer.validated_data),
            actor=request.user,
            facts=_acting_facts(request),
        )
        return Response(SignInPolicySerializer(policy).data)


class SignInPolicyPreviewView(TeamAPIView):
    required_permission = {"POST": PERMISSION_MEMBERS}

    @extend_schema(
        operation_id="clients_policy_preview",
        request=SignInPolicyInputSerializer,
        responses={
            200: SignInPolicyPreviewSerializer,
            **error_responses(errors.InvalidRequest, *TEAM_ERRORS, notes=_NOTES),
        },
        description="What `PUT …/policy` with this body would do, without doing it: the changes, the "
        "members whose sessions would stop reaching the client, the tokens that would lose it. The same "
        "refusals as the PUT (400).",
    )
    def post(self, request: Request, client: str) -> Response:
        target = self.client_get()
        serializer = SignInPolicyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        impact = services.sign_in_policy_preview(
            client=target,
            wanted=services.PolicyInput(**serializer.validated_data),
            facts=_acting_facts(request),
        )
        return Response(SignInPolicyPreviewSerializer(impact).data)


class ClientTokenListView(TeamAPIView):
    @extend_schema(
        operation_id="clients_tokens_list",
        responses={
            200: ClientAccessTokenSerializer(many=True),
            **error_responses(*TEAM_ERRORS, notes=_NOTES),
        },
        description=(
            "Members' personal access tokens that reach this client (never their secrets; not the "
            "portal operators' own)."
        ),
    )
    def get(self, request: Request, client: str) -> Response:
        tokens = team_selectors.client_access_tokens(client=self.client_get())
        return Response(ClientAccessTokenSerializer(tokens, many=True).data)


class ClientTokenDetailView(TeamAPIView):
    @extend_schema(
        operation_id="clients_tokens_revoke",
        responses={204: None, **error_responses(*TEAM_ERRORS, notes=_NOTES)},
        description=(
            "Take this client out of a member's token (the token dies when no client is left); "
            "404 for any token the list does not show."
        ),
    )
    def delete(self, request: Request, client: str, token_id: int) -> Response:
        services.client_access_token_revoke(client=self.client_get(), token_id=token_id, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- The invitee ------------------------------------------------------------------------------


class InvitationPreviewView(SignInAPIView):
    throttle_classes = [PublicIPThrottle]  # per address: guessing tokens is hopeless anyway

    @extend_schema(
        operation_id="invitations_preview",
        request=InvitationTokenInputSerializer,
        responses={
            200: InvitationPreviewSerializer,
            **error_responses(*SIGN_IN_ERRORS, errors.InvitationInvalid),
        },
        auth=[],
        description="What an invitation's link offers (the token travels in the body, never in a URL).",
    )
    def post(self, request: Request) -> Response:
        serializer = InvitationTokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation = services.invitation_open(token=serializer.validated_data["token"])
        invitation.account_exists = User.objects.filter(email=invitation.email).exists()
        invitation.sign_up_terms = team_selectors.invitation_sign_up_terms(client=invitation.client)
        return Response(InvitationPreviewSerializer(invitation).data, headers={"Cache-Control": "no-store"})


@method_decorator(never_cache, name="dispatch")
class InvitationAcceptView(APIView):
    @extend_schema(
        operation_id="invitations_accept",
        request=InvitationTokenInputSerializer,
        responses={
            200: InvitationAcceptedSerializer,
            **error_responses(
                errors.InvalidRequest,
                *AUTHENTICATION_ERRORS,
                errors.InvitationInvalid,
                errors.InvitationEmailMismatch,
                errors.RoleEscalation,
                errors.PatNotAllowed,
            ),
        },
        description="The signed-in addressee accepts: they become a member with the invitation's role "
        "(a role they already hold above it stays).",
    )
    def post(self, request: Request) -> Response:
        serializer = InvitationTokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        grant = services.invitation_accept(token=serializer.validated_data["token"], user=request.user)
        return Response(InvitationAcceptedSerializer(grant).data)


class InvitationSignUpView(SignInAPIView):
    @extend_schema(
        operation_id="invitations_sign_up",
        request=InvitationSignUpInputSerializer,
        responses={
            200: SIGN_IN_RESPONSE,
            **error_responses(
                *SIGN_IN_ERRORS,
                errors.InvitationInvalid,
                errors.InvitationEmailMismatch,
                errors.AccountExists,
                errors.RoleEscalation,
                errors.InvalidGoogleToken,
                errors.EmailNotVerified,
                errors.AccountDisabled,
                errors.GoogleUnavailable,
                errors.NotFound,
                errors.SignUpMethodNotAllowed,
                notes={
                    "not_found": "A Google credential while Google sign-in is not configured.",
                    "invalid_request": "With `fields`: a password the password rules refuse, and more.",
                },
            ),
        },
        auth=[],
        description="Accept an invitation by creating the account of its address: with a name and a "
        'password (base64, like login), or with Google (`credential`). Signed in at once ("tokenDelivery" '
        "as at login); an address that has an account answers 409 `account_exists` (sign in, then accept).",
    )
    def post(self, request: Request) -> Response:
        serializer = InvitationSignUpInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data, origin = serializer.validated_data, request_origin(request)
        if "credential" in data:
            step = services.invitation_sign_up_google(
                token=data["token"],
                credential=data["credential"],
                nonce=google_nonce_from_request(request),
                origin=origin,
            )
        else:
            step = services.invitation_sign_up_password(
                token=data["token"], name=data["name"], password=data["password"], origin=origin
            )
        response = sign_in_step_response(step=step, token_delivery=data["tokenDelivery"])
        if "credential" in data:
            google_nonce_clear(request, response)
        return response
