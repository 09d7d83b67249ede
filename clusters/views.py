"""The clusters API: one view per URL, authorization declared by ``required_permission``."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters import selectors, services
from clusters.permissions import HasClientPermission
from clusters.selectors import PERMISSION_CONFIGURE, PERMISSION_CREDENTIALS, PERMISSION_VIEW
from clusters.serializers import (
    ClientOutputSerializer,
    ClusterOutputSerializer,
    ClusterUpdateInputSerializer,
    CredentialsOutputSerializer,
    ErrorSerializer,
    HistoryEntryOutputSerializer,
)

_AUTH_403 = "not_authenticated / token_not_valid / account_disabled / csrf_failed (cookie requests)"
_400 = OpenApiResponse(ErrorSerializer, description="invalid_request, with `fields`.")
_403 = OpenApiResponse(
    ErrorSerializer,
    description="permission_denied: the client is outside your grants (whether or not it exists) "
    f"or your role lacks the permission; {_AUTH_403}.",
)
_403_LIST = OpenApiResponse(ErrorSerializer, description=f"{_AUTH_403}.")
_404 = OpenApiResponse(ErrorSerializer, description="not_found: no such cluster for this client.")
_503 = OpenApiResponse(ErrorSerializer, description="auth_unavailable: the session store is unreachable.")


class ClusterAPIView(APIView):
    permission_classes = [HasClientPermission]
    required_permission: str | dict[str, str]


class ClientListView(ClusterAPIView):
    required_permission = PERMISSION_VIEW

    @extend_schema(
        operation_id="clients_list",
        responses={200: ClientOutputSerializer(many=True), 403: _403_LIST, 503: _503},
    )
    def get(self, request):
        clients = selectors.client_list(user=request.user)
        return Response(ClientOutputSerializer(clients, many=True).data)


class ClusterListView(ClusterAPIView):
    required_permission = PERMISSION_VIEW

    @extend_schema(
        operation_id="clusters_list",
        responses={200: ClusterOutputSerializer(many=True), 403: _403, 503: _503},
    )
    def get(self, request, client: str):
        client_obj = selectors.client_access(
            user=request.user, client_slug=client, permission=PERMISSION_VIEW
        )
        details = selectors.cluster_list(client=client_obj)
        return Response(ClusterOutputSerializer(details, many=True).data)


class ClusterDetailView(ClusterAPIView):
    required_permission = {"GET": PERMISSION_VIEW, "PATCH": PERMISSION_CONFIGURE}

    @extend_schema(
        operation_id="clusters_retrieve",
        responses={200: ClusterOutputSerializer, 403: _403, 404: _404, 503: _503},
    )
    def get(self, request, client: str, cluster: str):
        cluster_obj = selectors.cluster_access(
            user=request.user, client_slug=client, cluster_slug=cluster, permission=PERMISSION_VIEW
        )
        return Response(ClusterOutputSerializer(selectors.cluster_detail(cluster=cluster_obj)).data)

    @extend_schema(
        operation_id="clusters_update",
        request=ClusterUpdateInputSerializer,
        responses={
            200: ClusterOutputSerializer,
            202: OpenApiResponse(
                ClusterOutputSerializer,
                description="Committed but not pushed yet (revision.pushed false): delivered later.",
            ),
            400: _400,
            403: _403,
            404: _404,
            409: OpenApiResponse(
                ErrorSerializer,
                description="gitops_values_conflict: the cluster's values file in git was edited by hand "
                "so that the change cannot be applied (e.g. `image` is not a mapping); nothing was changed.",
            ),
            503: OpenApiResponse(
                ErrorSerializer,
                description="auth_unavailable: the session store is unreachable; or gitops_unavailable: "
                "the change could not even be committed locally (nothing was changed).",
            ),
        },
    )
    def patch(self, request, client: str, cluster: str):
        cluster_obj = selectors.cluster_access(
            user=request.user, client_slug=client, cluster_slug=cluster, permission=PERMISSION_CONFIGURE
        )
        serializer = ClusterUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = services.cluster_update(
                cluster=cluster_obj, actor=request.user, **serializer.validated_data
            )
        except DjangoValidationError as exc:
            raise serializer.service_error(exc) from exc
        detail = selectors.cluster_detail(cluster=result.cluster)
        pending = result.change is not None and not result.change.pushed
        return Response(
            ClusterOutputSerializer(detail).data,
            status=status.HTTP_202_ACCEPTED if pending else status.HTTP_200_OK,
        )


@method_decorator(never_cache, name="dispatch")
class ClusterCredentialsView(ClusterAPIView):
    required_permission = PERMISSION_CREDENTIALS

    @extend_schema(
        operation_id="clusters_credentials_retrieve",
        responses={200: CredentialsOutputSerializer, 403: _403, 404: _404, 503: _503},
        description="Endpoint and API keys. Sent with `Cache-Control: no-store`.",
    )
    def get(self, request, client: str, cluster: str):
        cluster_obj = selectors.cluster_access(
            user=request.user, client_slug=client, cluster_slug=cluster, permission=PERMISSION_CREDENTIALS
        )
        return Response(CredentialsOutputSerializer(selectors.cluster_credentials(cluster=cluster_obj)).data)


@method_decorator(never_cache, name="dispatch")
class ClusterCredentialsRotateView(ClusterAPIView):
    required_permission = PERMISSION_CREDENTIALS

    @extend_schema(
        operation_id="clusters_credentials_rotate",
        request=None,
        responses={200: CredentialsOutputSerializer, 403: _403, 404: _404, 503: _503},
        description="Replace both API keys; the new ones are returned once. `Cache-Control: no-store`.",
    )
    def post(self, request, client: str, cluster: str):
        cluster_obj = selectors.cluster_access(
            user=request.user, client_slug=client, cluster_slug=cluster, permission=PERMISSION_CREDENTIALS
        )
        result = services.cluster_credentials_rotate(cluster=cluster_obj, actor=request.user)
        return Response(
            CredentialsOutputSerializer(selectors.cluster_credentials(cluster=result.cluster)).data
        )


class ClusterHistoryView(ClusterAPIView):
    required_permission = PERMISSION_VIEW

    @extend_schema(
        operation_id="clusters_history_list",
        responses={200: HistoryEntryOutputSerializer(many=True), 403: _403, 404: _404, 503: _503},
        description="Every recorded change, newest first.",
    )
    def get(self, request, client: str, cluster: str):
        cluster_obj = selectors.cluster_access(
            user=request.user, client_slug=client, cluster_slug=cluster, permission=PERMISSION_VIEW
        )
        changes = selectors.cluster_history(cluster=cluster_obj)
        return Response(HistoryEntryOutputSerializer(changes, many=True).data)
