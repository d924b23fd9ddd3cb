"""Search endpoints: read-only, anonymous-allowed, throttled under the "search" scope."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import ApplicationError, PayloadTooLarge

MAX_TOP = 100


class HitSerializer(serializers.Serializer):
    asset_id = serializers.IntegerField()
    score = serializers.FloatField()
    match = serializers.ChoiceField(
        choices=["exact", "hash", "geometric", "embedding", "caption", "contributor", "domain", "url"]
    )
    why = serializers.CharField()
    tier = serializers.ChoiceField(
        choices=["work", "related"],
        help_text="work: the file, its hashes, its keypoints or a copy-close embedding (or its URL, its credit); "
        "related: a weaker likeness, or words in a caption",
    )
    cluster = serializers.IntegerField(allow_null=True)
    opted_out = serializers.BooleanField()
    site_opt_out = serializers.CharField(
        help_text="the work's own site refuses AI training: the rule that says so (empty when it does not)"
    )
    source = serializers.CharField()  # type: ignore[assignment]  # DRF's metaclass takes declared fields off the class; the stub sees Field's own attribute
    url = serializers.CharField()
    domain = serializers.CharField()
    collection = serializers.CharField()
    key = serializers.CharField(help_text="dataset key (img2dataset manifests), else empty")
    title = serializers.CharField()
    display_title = serializers.CharField(
        help_text="the title, else one made from the dataset key or file name"
    )
    contributor = serializers.CharField()
    licence = serializers.CharField()


ResultsSerializer = inline_serializer(
    "SearchResults", {"count": serializers.IntegerField(), "results": HitSerializer(many=True)}
)


def _top(request, default: int) -> int:
    try:
        value = int(request.query_params.get("top", default))
    except ValueError as exc:
        raise ApplicationError("`top` must be an integer") from exc
    return max(1, min(MAX_TOP if default <= MAX_TOP else default, value))


def _response(hits) -> Response:
    from embeddings.selectors import hit_rows

    rows = hit_rows(hits)
    return Response({"count": len(rows), "results": rows})


class _SearchBase(APIView):
    permission_classes = [AllowAny]
    # throttled by REST_FRAMEWORK's DEFAULT_THROTTLE_CLASSES (set by the opt-out app) under this scope
    throttle_scope = "search"


class SearchImageApi(_SearchBase):
    parser_classes = [MultiPartParser, FormParser]

    class ImageSearchInputSerializer(serializers.Serializer):
        image = serializers.FileField()
        top = serializers.IntegerField(required=False, min_value=1, max_value=MAX_TOP, default=10)

    @extend_schema(
        summary="Find a work by picture",
        description="Exact file, perceptual hash (also mirrored), embedding kNN and ORB/RANSAC verification of "
        "crops and partial copies. Each hit says why it matched. 413 past the upload size limit, 400 for a "
        "non-image or a decompression bomb.",
        request={"multipart/form-data": ImageSearchInputSerializer},
        responses={200: ResultsSerializer},
    )
    def post(self, request):
        from django.conf import settings

        from embeddings.search.cascade import search_image_bytes

        upload = request.FILES.get("image")
        if upload is None:
            raise ApplicationError("send the picture as the multipart field `image`")
        if upload.size > settings.PROVENANT_MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(
                f"image is {upload.size} bytes; the limit is {settings.PROVENANT_MAX_UPLOAD_BYTES} bytes"
            )
        serializer = self.ImageSearchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        hits = search_image_bytes(upload.read(), top_k=serializer.validated_data["top"], user=request.user)
        return _response(hits)


class SearchApi(_SearchBase):
    @extend_schema(
        summary="Find works by text, contributor name or domain",
        description="Exactly one of `q` (what the picture shows), `contributor` (a name or credit string, "
        "case-insensitive substring) or `domain` (a host or URL; subdomains included).",
        parameters=[
            OpenApiParameter("q", str, description="text describing the picture"),
            OpenApiParameter("contributor", str, description="contributor name or alias"),
            OpenApiParameter("domain", str, description="domain or URL where works are hosted"),
            OpenApiParameter("top", int, description="how many results (default 10 for q, 50 otherwise)"),
        ],
        responses={200: ResultsSerializer},
    )
    def get(self, request):
        from embeddings import selectors

        given = {k: request.query_params.get(k, "").strip() for k in ("q", "contributor", "domain")}
        given = {k: v for k, v in given.items() if v}
        if len(given) != 1:
            raise ApplicationError("give exactly one of the parameters `q`, `contributor` or `domain`")
        ((kind, value),) = given.items()
        if len(value) > 500:
            raise ApplicationError("the search value is too long (500 characters at most)")
        if kind == "q":
            hits = selectors.search_text(value, top_k=_top(request, 10), user=request.user)
        elif kind == "contributor":
            hits = selectors.search_contributor(value, top_k=_top(request, 50), user=request.user)
        else:
            hits = selectors.search_domain(value, top_k=_top(request, 50), user=request.user)
        return _response(hits)
