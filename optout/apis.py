"""Thin DRF views over optout.services / optout.selectors. Another artist's objects answer 404 (their existence
is not revealed); operator-only actions answer 403 to artists."""

from __future__ import annotations

from typing import Any

import orjson
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import ApplicationError
from core.pagination import DefaultPagination
from core.permissions import IsOperator, is_operator
from core.serializers import ErrorSerializer
from core.throttles import TokenRateThrottle
from optout import checking, selectors, services
from optout.models import ContributorClaim, DomainClaim, OptOut, OptOutStateChange
from optout.verification import TXT_PREFIX, WELL_KNOWN_PATH

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="A replay with the same key and body returns the first result and changes nothing; the same key "
    "with another body answers 422.",
)  # fmt: skip


def _page(request, view, queryset, serializer_class) -> Response:
    paginator = view.pagination_class()
    page: list[Any] | None = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _get_or_404(queryset, pk: int):
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise NotFound("Not found.")
    return obj


# --- opt-outs ---------------------------------------------------------------------------------------------------


class OptOutOutputSerializer(serializers.ModelSerializer):
    asset_ids = serializers.SerializerMethodField()

    class Meta:
        model = OptOut
        fields = ["id", "scope", "status", "reason", "seed_asset", "contributor", "domain", "asset_ids",
                  "created_at", "updated_at"]  # fmt: skip

    def get_asset_ids(self, obj: OptOut) -> list[int]:
        return selectors.optout_covered_asset_ids(optout=obj, limit=10_000)


class StateChangeOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = OptOutStateChange
        fields = ["from_status", "to_status", "at", "actor", "note"]


class OptOutListCreateApi(APIView):
    permission_classes = [permissions.IsAuthenticated]
    pagination_class = DefaultPagination
    throttle_scope = "optout_create"
    throttle_methods = ("POST",)

    class OptOutListCreateInputSerializer(serializers.Serializer):
        scope = serializers.ChoiceField(choices=OptOut.Scope.choices)
        asset_ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
            required=False,
            max_length=10_000,
        )
        asset_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
        contributor_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
        domain = serializers.CharField(max_length=255, required=False, allow_blank=True)
        reason = serializers.CharField(max_length=1000, required=False, allow_blank=True)

    @extend_schema(responses=OptOutOutputSerializer(many=True))
    def get(self, request):
        return _page(request, self, selectors.optouts_visible_to(request.user), OptOutOutputSerializer)

    @extend_schema(
        request=OptOutListCreateInputSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            201: OptOutOutputSerializer,
            200: OptOutOutputSerializer,
            404: OpenApiResponse(
                ErrorSerializer, description="a work or contributor named in the body does not exist"
            ),
            422: OpenApiResponse(description="the Idempotency-Key was used for another request"),
        },
    )
    def post(self, request):
        serializer = self.OptOutListCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key") or None
        optout, created = services.optout_create(
            artist=request.user, idempotency_key=key, **serializer.validated_data
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(OptOutOutputSerializer(optout).data, status=code)


class OptOutDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=OptOutOutputSerializer)
    def get(self, request, optout_id: int):
        return Response(
            OptOutOutputSerializer(_get_or_404(selectors.optouts_visible_to(request.user), optout_id)).data
        )


class OptOutHistoryApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=StateChangeOutputSerializer(many=True))
    def get(self, request, optout_id: int):
        optout = _get_or_404(selectors.optouts_visible_to(request.user), optout_id)
        return Response(StateChangeOutputSerializer(optout.history.all(), many=True).data)


class OptOutRevokeApi(APIView):
    """The artist opts back in. Only the owner may; a second revoke is a no-op."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=None, responses=OptOutOutputSerializer)
    def post(self, request, optout_id: int):
        optout = _get_or_404(selectors.optouts_visible_to(request.user), optout_id)
        if optout.artist_id != request.user.pk:
            raise PermissionDenied("Only the artist who made an opt-out can revoke it.")
        services.optout_revoke(optout=optout, artist=request.user)
        return Response(OptOutOutputSerializer(optout).data)


class _OperatorDecisionApi(APIView):
    """A decision on a pending opt-out; the same decision again is a no-op (200), the other one 409."""

    permission_classes = [permissions.IsAuthenticated]
    approve = True

    class OperatorDecisionInputSerializer(serializers.Serializer):
        note = serializers.CharField(max_length=1000, required=False, allow_blank=True)

    @extend_schema(
        request=OperatorDecisionInputSerializer,
        responses={200: OptOutOutputSerializer, 409: ErrorSerializer},
    )
    def post(self, request, optout_id: int):
        optout = _get_or_404(selectors.optouts_visible_to(request.user), optout_id)
        if not is_operator(request.user):
            raise PermissionDenied("Only operators review opt-outs.")
        serializer = self.OperatorDecisionInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        note = serializer.validated_data.get("note", "")
        if self.approve:
            services.optout_approve(optout=optout, operator=request.user, note=note)
        else:
            services.optout_reject(optout=optout, operator=request.user, note=note)
        return Response(OptOutOutputSerializer(optout).data)


class OptOutApproveApi(_OperatorDecisionApi):
    approve = True


class OptOutRejectApi(_OperatorDecisionApi):
    approve = False


# --- claims -----------------------------------------------------------------------------------------------------


class DomainClaimOutputSerializer(serializers.ModelSerializer):
    instructions = serializers.SerializerMethodField()

    class Meta:
        model = DomainClaim
        fields = ["id", "domain", "status", "method", "token", "verified_at", "last_error", "instructions"]

    def get_instructions(self, obj: DomainClaim) -> str:
        return (
            f"Publish the token at https://{obj.domain}{WELL_KNOWN_PATH} or in a DNS TXT record at "
            f"_provenant.{obj.domain} as {TXT_PREFIX}{obj.token}, then call verify."
        )


class DomainClaimListCreateApi(APIView):
    permission_classes = [permissions.IsAuthenticated]
    pagination_class = DefaultPagination
    throttle_scope = "claim"
    throttle_methods = ("POST",)

    class DomainClaimListCreateInputSerializer(serializers.Serializer):
        domain = serializers.CharField(max_length=255)

    @extend_schema(responses=DomainClaimOutputSerializer(many=True))
    def get(self, request):
        return _page(
            request, self, selectors.domain_claims_visible_to(request.user), DomainClaimOutputSerializer
        )

    @extend_schema(
        request=DomainClaimListCreateInputSerializer,
        responses={201: DomainClaimOutputSerializer, 200: DomainClaimOutputSerializer},
    )
    def post(self, request):
        serializer = self.DomainClaimListCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        claim, created = services.domain_claim_create(artist=request.user, **serializer.validated_data)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(DomainClaimOutputSerializer(claim).data, status=code)


class DomainClaimDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=DomainClaimOutputSerializer)
    def get(self, request, claim_id: int):
        claim = _get_or_404(selectors.domain_claims_visible_to(request.user), claim_id)
        return Response(DomainClaimOutputSerializer(claim).data)


class DomainClaimVerifyApi(APIView):
    """Each call fetches from the artist's domain: throttled so it cannot be used to hammer a host."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_scope = "verify"

    @extend_schema(request=None, responses=DomainClaimOutputSerializer)
    def post(self, request, claim_id: int):
        claim = _get_or_404(DomainClaim.objects.filter(artist_id=request.user.pk), claim_id)
        claim = services.domain_claim_verify(claim=claim)
        return Response(DomainClaimOutputSerializer(claim).data)


class ContributorClaimOutputSerializer(serializers.ModelSerializer):
    contributor_name = serializers.CharField(source="contributor.display_name", read_only=True)

    class Meta:
        model = ContributorClaim
        fields = ["id", "contributor", "contributor_name", "status", "method", "evidence", "reviewed_at"]


class ContributorClaimListCreateApi(APIView):
    permission_classes = [permissions.IsAuthenticated]
    pagination_class = DefaultPagination
    throttle_scope = "claim"
    throttle_methods = ("POST",)

    class ContributorClaimListCreateInputSerializer(serializers.Serializer):
        contributor_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
        evidence = serializers.CharField(max_length=5000, required=False, allow_blank=True)

    @extend_schema(responses=ContributorClaimOutputSerializer(many=True))
    def get(self, request):
        return _page(
            request,
            self,
            selectors.contributor_claims_visible_to(request.user),
            ContributorClaimOutputSerializer,
        )

    @extend_schema(
        request=ContributorClaimListCreateInputSerializer,
        responses={
            201: ContributorClaimOutputSerializer,
            200: ContributorClaimOutputSerializer,
            404: OpenApiResponse(ErrorSerializer, description="no such contributor"),
        },
    )
    def post(self, request):
        serializer = self.ContributorClaimListCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        claim, created = services.contributor_claim_create(artist=request.user, **serializer.validated_data)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(ContributorClaimOutputSerializer(claim).data, status=code)


class ContributorClaimDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=ContributorClaimOutputSerializer)
    def get(self, request, claim_id: int):
        claim = _get_or_404(selectors.contributor_claims_visible_to(request.user), claim_id)
        return Response(ContributorClaimOutputSerializer(claim).data)


class ContributorClaimReviewApi(APIView):
    """Operators approve or reject an identity claim (also available as an admin action)."""

    permission_classes = [permissions.IsAuthenticated, IsOperator]

    class ContributorClaimReviewInputSerializer(serializers.Serializer):
        approve = serializers.BooleanField()

    @extend_schema(request=ContributorClaimReviewInputSerializer, responses=ContributorClaimOutputSerializer)
    def post(self, request, claim_id: int):
        claim = _get_or_404(ContributorClaim.objects.all(), claim_id)
        serializer = self.ContributorClaimReviewInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        claim = services.contributor_claim_review(
            claim=claim, reviewer=request.user, approve=serializer.validated_data["approve"]
        )
        return Response(ContributorClaimOutputSerializer(claim).data)


# --- bulk check -------------------------------------------------------------------------------------------------


class OrjsonParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return orjson.loads(stream.read())
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"JSON parse error: {exc}") from exc


class OrjsonRenderer(BaseRenderer):
    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return b"" if data is None else orjson.dumps(data)


class CheckItemSerializer(serializers.Serializer):
    url = serializers.CharField(required=False, max_length=2000)
    sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$", required=False)
    phash = serializers.CharField(
        required=False, help_text="signed int64 (number or string) or 16 hex digits"
    )
    key = serializers.JSONField(required=False, help_text="echoed back; defaults to the item's index")


class CheckResultSerializer(serializers.Serializer):
    key = serializers.JSONField(help_text="the item's own key, else its index in `items`")
    allowed = serializers.BooleanField()
    optout_id = serializers.IntegerField(allow_null=True)
    match = serializers.ChoiceField(
        choices=["sha256", "url", "domain", "phash", "site_signal"], allow_null=True
    )
    reason = serializers.CharField()
    rule = serializers.CharField(
        required=False, help_text="site_signal only: robots-txt, ai-txt, tdmrep, ..."
    )
    evidence_url = serializers.CharField(
        required=False, help_text="site_signal only: the document that decided"
    )
    evidence_at = serializers.DateTimeField(required=False, help_text="site_signal only: when it was fetched")


class CheckApi(APIView):
    """Up to 10,000 items per call; each answered allowed or denied, with the opt-out and the reason.
    Validation is hand-written (a serializer per item would cost more than the lookups)."""

    permission_classes = [permissions.IsAuthenticated]
    throttle_classes = [TokenRateThrottle]
    throttle_scope = "check"
    parser_classes = [OrjsonParser]
    renderer_classes = [OrjsonRenderer]
    max_body_setting = "OPTOUT_CHECK_MAX_BODY_BYTES"  # core.middleware answers 413 past it, unread

    @extend_schema(
        request=inline_serializer("CheckRequest", {"items": CheckItemSerializer(many=True)}),
        responses={
            200: inline_serializer(
                "CheckResponse",
                {
                    "count": serializers.IntegerField(),
                    "denied": serializers.IntegerField(),
                    "results": CheckResultSerializer(many=True),
                },  # fmt: skip
            ),
            413: OpenApiResponse(description="the body is over OPTOUT_CHECK_MAX_BODY_BYTES; it was not read"),
        },
    )
    def post(self, request):
        items = request.data.get("items") if isinstance(request.data, dict) else None
        if items is None:
            raise ApplicationError('Send {"items": [...]}.')
        try:
            results = checking.check(items)
        except checking.CheckInputError as exc:
            extra = {} if exc.index is None else {"index": exc.index}
            raise ApplicationError(str(exc), extra=extra) from None
        denied = sum(1 for r in results if not r["allowed"])
        return Response({"count": len(results), "denied": denied, "results": results})
