"""Accounts and API tokens over the API: sign up, log in (each issues a fresh token, shown once), list, create,
rotate and revoke one's own tokens."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from knox.models import AuthToken
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import DefaultPagination
from core.serializers import ErrorSerializer
from optout import accounts

TOO_MANY_TOKENS = OpenApiResponse(
    ErrorSerializer, "PROVENANT_MAX_TOKENS_PER_USER live tokens already: revoke one"
)


class IssuedTokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="shown once: only its digest is stored")
    token_key = serializers.CharField(help_text="the token's public prefix, to list or revoke it by")
    expiry = serializers.DateTimeField(allow_null=True)
    username = serializers.CharField()


def _issued(row: AuthToken, token: str, code: int = status.HTTP_201_CREATED) -> Response:
    data = {"token": token, "token_key": row.token_key, "expiry": row.expiry, "username": row.user.username}
    return Response(IssuedTokenOutputSerializer(data).data, status=code)


class ArtistSignupApi(APIView):
    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []
    throttle_scope = "signup"

    class ArtistSignupInputSerializer(serializers.Serializer):
        username = serializers.RegexField(r"^[\w.@+-]{3,150}$")
        email = serializers.EmailField()
        password = serializers.CharField(min_length=8, max_length=128, write_only=True)

    @extend_schema(
        request=ArtistSignupInputSerializer,
        responses={201: IssuedTokenOutputSerializer, 409: OpenApiResponse(ErrorSerializer, "username taken")},
    )
    def post(self, request):
        serializer = self.ArtistSignupInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = accounts.artist_signup(**serializer.validated_data)
        row, token = accounts.token_create(user=user, lifetime=accounts.login_token_lifetime(), via="signup")
        return _issued(row, token)


class ArtistLoginApi(APIView):
    """Each login issues a new token; earlier ones stay valid until they expire or are revoked."""

    permission_classes = [permissions.AllowAny]
    authentication_classes: list = []
    throttle_scope = "login"

    class ArtistLoginInputSerializer(serializers.Serializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=128, write_only=True)

    @extend_schema(
        request=ArtistLoginInputSerializer,
        responses={
            200: IssuedTokenOutputSerializer,
            401: OpenApiResponse(ErrorSerializer, "wrong username or password"),
            429: OpenApiResponse(ErrorSerializer, "username or address locked out after too many failures"),
        },
    )
    def post(self, request):
        serializer = self.ArtistLoginInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = accounts.artist_login(request=request._request, **serializer.validated_data)
        row, token = accounts.token_create(user=user, lifetime=accounts.login_token_lifetime(), via="login")
        return _issued(row, token, status.HTTP_200_OK)


class TokenOutputSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField()

    class Meta:
        model = AuthToken
        fields = ["token_key", "created", "expiry", "current"]

    def get_current(self, obj: AuthToken) -> bool:
        auth = self.context.get("auth")
        return isinstance(auth, AuthToken) and auth.digest == obj.digest


class TokenListCreateApi(APIView):
    permission_classes = [permissions.IsAuthenticated]
    pagination_class = DefaultPagination
    throttle_scope = "token"
    throttle_methods = ("POST",)

    class TokenCreateInputSerializer(serializers.Serializer):
        days = serializers.IntegerField(
            min_value=0, max_value=3650, required=False, help_text="lifetime; 0 never expires"
        )

    @extend_schema(responses=TokenOutputSerializer(many=True))
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(accounts.tokens_of(request.user), request, view=self)
        data = TokenOutputSerializer(page, many=True, context={"auth": request.auth}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        request=TokenCreateInputSerializer, responses={201: IssuedTokenOutputSerializer, 409: TOO_MANY_TOKENS}
    )
    def post(self, request):
        serializer = self.TokenCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        lifetime = accounts.api_token_lifetime(serializer.validated_data.get("days"))
        row, token = accounts.token_create(user=request.user, lifetime=lifetime, via="api")
        return _issued(row, token)


class TokenRevokeApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=None, responses={204: None, 404: OpenApiResponse(ErrorSerializer, "not your token")}
    )
    def delete(self, request, token_key: str):
        accounts.token_revoke(user=request.user, token_key=token_key)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRotateApi(APIView):
    """Replace the token this request authenticates with: the new one is shown once, the old one stops working."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_scope = "token"

    @extend_schema(request=None, responses={201: IssuedTokenOutputSerializer, 409: TOO_MANY_TOKENS})
    def post(self, request):
        current = request.auth if isinstance(request.auth, AuthToken) else None
        row, token = accounts.token_rotate(user=request.user, current=current)
        return _issued(row, token)
