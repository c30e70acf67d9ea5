"""Sign-in and personal tokens under /api/auth/: the signed-in session and
its permissions, sign-out, and the caller's own API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import ratelimit, tokens
from accounts.models import ApiToken, PathGrant
from noetl_site import access


class SignInView(auth_views.LoginView):
    """The password form, with an Auth0 button when AUTH0_DOMAIN is set."""

    template_name = "accounts/login.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["auth0_enabled"] = bool(settings.SOCIAL_AUTH_AUTH0_DOMAIN)
        return context


def permissions_of(user: Any) -> dict[str, Any]:
    """What ``user`` may do, as the UI needs it to show or hide actions."""
    grants = []
    if getattr(user, "is_authenticated", False):
        grants = [
            {
                "group": grant.group.name,
                "pattern": grant.pattern,
                "view": grant.can_view,
                "execute": grant.can_execute,
                "modify": grant.can_modify,
            }
            for grant in PathGrant.objects.filter(group__user=user).select_related(
                "group"
            )
        ]
    return {
        "all_paths": access.unrestricted(user),
        "grants": grants,
        "credentials": {
            "view": access.can_view_secrets_metadata(user),
            "manage": access.can_manage_secrets(user),
        },
    }


class SessionView(APIView):
    @extend_schema(
        responses={200: OpenApiTypes.OBJECT, 401: OpenApiTypes.OBJECT},
        description="The signed-in user and what they may do; 401 when no one "
        "is signed in.",
    )
    def get(self, request: Request) -> Response:
        user = request.user
        data: dict[str, Any] = {"user": None, "permissions": permissions_of(user)}
        if user.is_authenticated:
            data["user"] = {
                "username": user.get_username(),
                "email": user.email,
                "name": user.get_full_name(),
                "is_superuser": user.is_superuser,
                "is_staff": user.is_staff,
                "groups": sorted(user.groups.values_list("name", flat=True)),
            }
        data["auth_disabled"] = access.unrestricted(user) and not user.is_authenticated
        return Response(data)


class LogoutView(APIView):
    @extend_schema(
        request=None,
        responses={200: OpenApiTypes.OBJECT},
        description="End the browser session (POST with the CSRF token). With "
        "`next`, a browser is sent there afterwards.",
    )
    def post(self, request: Request) -> Response:
        logout(request._request)
        target = request.query_params.get("next") or request.data.get("next", "")
        if target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}
        ):
            return Response(
                status=status.HTTP_303_SEE_OTHER, headers={"Location": target}
            )
        return Response({"signed_out": True})


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = [
            "prefix",
            "name",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]


class NewTokenSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, default="")
    expires_in_days = serializers.FloatField(
        required=False, allow_null=True, default=None, min_value=0.001, max_value=3650
    )


class MintedSerializer(TokenSerializer):
    token = serializers.CharField(help_text="Shown this once; only its hash is kept.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]


class TokensView(APIView):
    @extend_schema(
        responses=TokenSerializer(many=True), operation_id="auth_tokens_list"
    )
    def get(self, request: Request) -> Response:
        _need_user(request)
        rows = ApiToken.objects.filter(user=request.user)
        return Response({"results": TokenSerializer(rows, many=True).data})

    @extend_schema(request=NewTokenSerializer, responses={201: MintedSerializer})
    @method_decorator(ratelimit.limited("token", methods=("POST",)))
    def post(self, request: Request) -> Response:
        _need_user(request)
        body = NewTokenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        days = body.validated_data["expires_in_days"]
        expires_at = timezone.now() + timedelta(days=days) if days else None
        row, token = tokens.mint(request.user, body.validated_data["name"], expires_at)
        data = {**TokenSerializer(row).data, "token": token}
        return Response(data, status=status.HTTP_201_CREATED)


class TokenView(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, prefix: str) -> Response:
        _need_user(request)
        row = ApiToken.objects.filter(user=request.user, prefix=prefix).first()
        if row is None:
            raise exceptions.NotFound(f"you have no token {prefix}")
        tokens.revoke(row)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _need_user(request: Request) -> None:
    # Tokens belong to a person: with auth disabled an anonymous caller has none.
    if not request.user.is_authenticated:
        raise exceptions.NotAuthenticated("sign in to manage your API tokens")
