"""How the OpenAPI document describes the JWT authentication (cookie or header tokens)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.JWTAuthentication"
    name = ["accessTokenCookie", "bearerAuth", "xAuthToken", "refreshTokenCookie"]

    def get_security_requirement(self, auto_schema):
        return [{"accessTokenCookie": []}, {"bearerAuth": []}, {"xAuthToken": []}]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "cookie",
                "name": "__Host-accessToken",
                "description": "Access token cookie (`accessToken` over plain HTTP in development).",
            },
            {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An access token (JWT), or a personal access token (`qpt_...`) where the "
                "endpoint accepts one (README: Access tokens).",
            },
            {"type": "apiKey", "in": "header", "name": "X-Auth-Token"},
            {
                "type": "apiKey",
                "in": "cookie",
                "name": "__Secure-refreshToken",
                "description": "Refresh token cookie, Path /api/auth/ (`refreshToken` in development).",
            },
        ]
