"""A tiny API used only to exercise the error format through real DRF parsing."""

from django.urls import path
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class EchoInput(serializers.Serializer):
    replicas = serializers.IntegerField(min_value=1, max_value=10)


class EchoView(APIView):
    permission_classes = [AllowAny]

    def post(self, request):
        data = EchoInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(data.validated_data)


class BrokenView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("a bug")


urlpatterns = [
    path("api/echo", EchoView.as_view()),
    path("api/broken", BrokenView.as_view()),
]

handler500 = "config.exceptions.handler500"
