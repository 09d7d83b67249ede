"""The clusters API: one view per URL, each naming the permission it requires once."""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from accounts.authentication import request_credential, request_origin
from accounts.second_factors import recent_authentication_require
from clusters import selectors, services
from clusters.models import Client, Cluster
from clusters.permissions import (
    PERMISSION_CONFIGURE,
    PERMISSION_CREDENTIALS,
    PERMISSION_VIEW,
    HasClientPermission,
    view_permission,
)
from clusters.serializers import (
    ClientOutputSerializer,
    ClusterOutputSerializer,
    ClusterUpdateInputSerializer,
    CredentialsOutputSerializer,
    HistoryEntryOutputSerializer,
    PageQuerySerializer,
    PermissionsSerializer,
    spec_errors,
)
from config import errors
from config.api import APIView
from config.openapi import AUTHENTICATION_ERRORS, error_responses

# A path segment that is not a slug matches no route: 404 on every endpoint under /api/clients/.
CLIENT_ERRORS = (*AUTHENTICATION_ERRORS, errors.PermissionDenied, errors.StepUpRequired, errors.NotFound)
CLUSTER_ERRORS = CLIENT_ERRORS
_NOTES = {
    "permission_denied": "The client is outside your grants (whether or not it exists), "
    "or your role lacks the permission.",
    "not_found": "No such cluster for this client (or one decommissioned: the detail says so), or a client "
    "or cluster name that is not a slug.",
}


class ClientAPIView(APIView):
    """A view under ``/api/clients/{client}/``: it fetches its object authorized, in one selector call.

    Personal access tokens are accepted, narrowed to their scopes (views that need a session say no).
    """

    permission_classes = [HasClientPermission]
    accepts_personal_access_tokens = True
    required_permission: str | Mapping[str, str]

    def client_get(self) -> Client:
        return selectors.client_access(
            user=self.request.user,
            client_slug=self.kwargs["client"],
            permission=view_permission(self, self.request.method),
        )

    def cluster_get(self) -> Cluster:
        return selectors.cluster_access(
            user=self.request.user,
            client_slug=self.kwargs["client"],
            cluster_slug=self.kwargs["cluster"],
            permission=view_permission(self, self.request.method),
        )


class PermissionsView(APIView):
    accepts_personal_access_tokens = True

    @extend_schema(
        operation_id="auth_permissions",
        responses={200: PermissionsSerializer, **error_responses(*AUTHENTICATION_ERRORS)},
        description="What this credential may do on each client now, and the clients the user belongs to "
        "that this session does not reach, with what their sign-in policy asks (`restricted`), so an app "
        "can offer the step-up.",
    )
    def get(self, request):
        permissions = selectors.user_client_permissions(user=request.user)
        restricted = selectors.restricted_clients(user=request.user)
        return Response(
            PermissionsSerializer(
                {"clients": permissions, "isStaff": request.user.is_staff, "restricted": restricted}
            ).data
        )


class ClientListView(ClientAPIView):
    required_permission = PERMISSION_VIEW

    @extend_schema(
        operation_id="clients_list",
        responses={200: ClientOutputSerializer(many=True), **error_responses(*AUTHENTICATION_ERRORS)},
    )
    def get(self, request):
        return Response(ClientOutputSerializer(selectors.client_list(user=request.user), many=True).data)


class AllClustersView(ClientAPIView):
    required_permission = PERMISSION_VIEW

    @extend_schema(
        operation_id="clusters_all_list",
        responses={200: ClusterOutputSerializer(many=True), **error_responses(*AUTHENTICATION_ERRORS)},
        description="The clusters of every client the credential may view (`GET /api/clients`), by client "
        "then name, in one answer: what the browser's Clusters page shows, without a request per client.",
    )
    def get(self, request):
        details = selectors.clients_clusters(clients=selectors.client_list(user=request.user))
        return Response(ClusterOutputSerializer(details, many=True).data)


class ClusterListView(ClientAPIView):
    required_permission = PERMISSION_VIEW

    @extend_schema(
        operation_id="clusters_list",
        responses={200: ClusterOutputSerializer(many=True), **error_responses(*CLIENT_ERRORS, notes=_NOTES)},
    )
    def get(self, request, client: str):
        details = selectors.cluster_list(client=self.client_get())
        return Response(ClusterOutputSerializer(details, many=True).data)


class ClusterDetailView(ClientAPIView):
    required_permission = {"GET": PERMISSION_VIEW, "PATCH": PERMISSION_CONFIGURE}

    @extend_schema(
        operation_id="clusters_retrieve",
        responses={200: ClusterOutputSerializer, **error_responses(*CLUSTER_ERRORS, notes=_NOTES)},
    )
    def get(self, request, client: str, cluster: str):
        return Response(ClusterOutputSerializer(selectors.cluster_detail(cluster=self.cluster_get())).data)

    @extend_schema(
        operation_id="clusters_update",
        request=ClusterUpdateInputSerializer,
        responses={
            200: ClusterOutputSerializer,
            202: OpenApiResponse(
                ClusterOutputSerializer,
                description="Accepted, not done yet: committed but not pushed (revision.pushed false, "
                "delivered later), and/or a bigger storageGi waits for an operator (storage.state "
                "`waiting_for_operator`; storageGi stays the size deployed until then).",
            ),
            **error_responses(
                errors.InvalidRequest,
                *CLUSTER_ERRORS,
                errors.ConfirmationRequired,
                errors.StorageExpansionPending,
                errors.GitopsValuesConflict,
                errors.GitopsUnavailable,
                errors.SecretsUnavailable,
                notes={
                    "invalid_request": "With `fields`: out of range, not a whole number, shrinking storage; "
                    "a version that is not in allowedVersions (a downgrade, a skipped minor version, an "
                    "unknown version): `fields.version` names the versions allowed next.",
                    "confirmation_required": 'Fewer replicas without `"confirm": true`; the detail says '
                    "what a scale-down risks. Nothing was changed.",
                    **_NOTES,
                },
            ),
        },
    )
    def patch(self, request, client: str, cluster: str):
        cluster_obj = self.cluster_get()
        serializer = ClusterUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = services.cluster_update(
                cluster=cluster_obj, actor=request.user, source=_source(request), **serializer.validated_data
            )
        except DjangoValidationError as exc:
            raise spec_errors(exc) from exc
        change = result.change
        pending = (change is not None and not change.pushed) or result.storage_expansion is not None
        # The commit that carries this request's change, even when others changed the cluster since.
        revision = change if change is not None and change.commit else None
        return Response(
            ClusterOutputSerializer(selectors.cluster_detail(cluster=result.cluster, revision=revision)).data,
            status=status.HTTP_202_ACCEPTED if pending else status.HTTP_200_OK,
        )


class ClusterStorageRequestView(ClientAPIView):
    required_permission = {"DELETE": PERMISSION_CONFIGURE}

    @extend_schema(
        operation_id="clusters_storage_request_cancel",
        request=None,
        responses={
            200: ClusterOutputSerializer,
            **error_responses(
                *CLUSTER_ERRORS,
                errors.StorageExpansionNotFound,
                notes={**_NOTES, "not_found": "No such cluster, or no storage request waits."},
            ),
        },
        description="Cancel the storage request waiting for an operator; answers the cluster.",
    )
    def delete(self, request, client: str, cluster: str):
        saved = services.storage_expansion_cancel(
            cluster=self.cluster_get(), actor=request.user, source=_source(request)
        )
        return Response(ClusterOutputSerializer(selectors.cluster_detail(cluster=saved)).data)


@method_decorator(never_cache, name="dispatch")
class ClusterCredentialsView(ClientAPIView):
    required_permission = PERMISSION_CREDENTIALS
    # No HEAD: Django would answer it with GET, recording a reveal in the audit trail of keys
    # nobody was sent.
    http_method_names = ["get"]

    @extend_schema(
        operation_id="clusters_credentials_retrieve",
        responses={
            200: CredentialsOutputSerializer,
            **error_responses(
                *CLUSTER_ERRORS, errors.SecretsUnavailable, errors.AuditUnavailable, notes=_NOTES
            ),
        },
        description="Endpoint and API keys. Sent with `Cache-Control: no-store`. Every read is recorded "
        "in the client's audit trail (`credentials_revealed`: who, with which session or token, from "
        "which address); when it cannot be, no key is sent (503 `audit_unavailable`).",
    )
    def get(self, request, client: str, cluster: str):
        keys = services.cluster_credentials_reveal(cluster=self.cluster_get(), shown_to=_shown_to(request))
        return Response(CredentialsOutputSerializer(keys).data)


_KEYS_NOT_PUSHED = OpenApiResponse(
    CredentialsOutputSerializer,
    description="Accepted, not done yet: committed, but git's remote did not take it; the keys reach "
    "the cluster once it does (the cluster's revision says when).",
)
_KEYS_ERRORS = (errors.GitopsUnavailable, errors.SecretsUnavailable, errors.AuditUnavailable)


def _source(request) -> services.ChangeSource:
    return services.ChangeSource(credential=request_credential(request), origin=request_origin(request))


def _shown_to(request) -> services.KeysShownTo:
    return services.KeysShownTo(
        actor=request.user, credential=request_credential(request), origin=request_origin(request)
    )


def _keys_answer(result: services.ClusterChangeResult) -> Response:
    """The cluster's keys after a key change (its service recorded the reveal with the change):
    202 while the change waits to be pushed."""
    pushed = result.change is None or result.change.pushed
    return Response(
        CredentialsOutputSerializer(selectors.cluster_credentials(cluster=result.cluster)).data,
        status=status.HTTP_200_OK if pushed else status.HTTP_202_ACCEPTED,
    )


@method_decorator(never_cache, name="dispatch")
class ClusterCredentialsRotateView(ClientAPIView):
    required_permission = PERMISSION_CREDENTIALS
    accepts_personal_access_tokens = False  # it needs a recent proof of identity, which a token cannot give

    @extend_schema(
        operation_id="clusters_credentials_rotate",
        request=None,
        responses={
            200: CredentialsOutputSerializer,
            202: _KEYS_NOT_PUSHED,
            **error_responses(
                *CLUSTER_ERRORS,
                *_KEYS_ERRORS,
                errors.RotationInProgress,
                errors.ReauthenticationRequired,
                errors.PatNotAllowed,
                notes=_NOTES,
            ),
        },
        description="New keys, returned once. With `rotationMode` `two_phase` the new API key is "
        "accepted next to the old one (`rotation` says until when) and the read-only key is replaced; "
        "with `one_step` the old keys fail as the pods restart. Needs a recent authentication "
        "(`POST /api/auth/reauthenticate`), else 403 `reauthentication_required`. "
        "`Cache-Control: no-store`.",
    )
    def post(self, request, client: str, cluster: str):
        target = self.cluster_get()  # 404 before 403: no hint that a cluster exists elsewhere
        recent_authentication_require(session_id=request.auth.session.session_id)
        return _keys_answer(services.cluster_credentials_rotate(cluster=target, shown_to=_shown_to(request)))


@method_decorator(never_cache, name="dispatch")
class ClusterCredentialsRotationFinishView(ClientAPIView):
    required_permission = PERMISSION_CREDENTIALS

    @extend_schema(
        operation_id="clusters_credentials_rotation_finish",
        request=None,
        responses={
            200: CredentialsOutputSerializer,
            202: _KEYS_NOT_PUSHED,
            **error_responses(*CLUSTER_ERRORS, *_KEYS_ERRORS, errors.NoRotationInProgress, notes=_NOTES),
        },
        description="Finish a two-phase rotation: the new key becomes the only one and the old one "
        "stops working as the pods restart. `Cache-Control: no-store`.",
    )
    def post(self, request, client: str, cluster: str):
        result = services.cluster_credentials_rotation_finish(
            cluster=self.cluster_get(), actor=request.user, shown_to=_shown_to(request)
        )
        return _keys_answer(result)


class ClusterHistoryView(ClientAPIView):
    required_permission = PERMISSION_VIEW

    @extend_schema(
        operation_id="clusters_history_list",
        parameters=[PageQuerySerializer],
        responses={
            200: HistoryEntryOutputSerializer(many=True),
            **error_responses(errors.InvalidRequest, *CLUSTER_ERRORS, notes=_NOTES),
        },
        description=f"Every recorded change, newest first, {selectors.HISTORY_PAGE_SIZE} at a time "
        "(`?before=<the last id>` for the next page). `via` and `ip` are shown to the client's admins "
        "signed in (who may read the team's audit trail), null for everyone else.",
    )
    def get(self, request, client: str, cluster: str):
        target = self.cluster_get()
        query = PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        changes = selectors.cluster_history(cluster=target, before=query.validated_data.get("before"))
        origins = selectors.change_origins_visible(
            user=request.user,
            client=target.client,
            with_session=request_credential(request).session_id is not None,
        )
        return Response(HistoryEntryOutputSerializer(changes, many=True, context={"origins": origins}).data)
