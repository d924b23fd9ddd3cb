"""Thin DRF views: generate (with attribution), read images and models, contributor-share reports."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.http import HttpResponse
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.exceptions import NotFound
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import ApplicationError
from core.permissions import IsOperator, is_operator
from core.serializers import ErrorSerializer
from generator import selectors, services
from generator.models import AttributionRecord, GeneratedImage, GeneratorModel


class AttributionSerializer(serializers.ModelSerializer):
    label = serializers.CharField(  # type: ignore[assignment]  # DRF's metaclass takes declared fields off the class; the stub sees Field's own attribute
        read_only=True, help_text='"influence" (gradient) or "similarity" (similarity only)'
    )

    class Meta:
        model = AttributionRecord
        fields = ["method", "label", "method_version", "shares", "raw_scores"]


class GeneratedImageSerializer(serializers.ModelSerializer):
    model_version = serializers.CharField(source="model.version")
    image_url = serializers.SerializerMethodField()
    attributions = AttributionSerializer(many=True, read_only=True)

    class Meta:
        model = GeneratedImage
        fields = [
            "id",
            "model_version",
            "prompt",
            "seed",
            "resolution",
            "image_url",
            "created_at",
            "override_stale",
            "seconds",
            "attributions",
        ]

    def get_image_url(self, obj: GeneratedImage) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(obj.image.url) if request else obj.image.url


class GeneratorModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = GeneratorModel
        fields = [
            "id",
            "version",
            "status",
            "manifest_build_id",
            "manifest_hash",
            "trained_at",
            "steps_done",
            "training_seconds",
            "training_contributors",
            "stale_at",
            "stale_reason",
            "config",
        ]


class GenerateApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    class GenerateInputSerializer(serializers.Serializer):
        prompt = serializers.CharField(max_length=500)
        seed = serializers.IntegerField(required=False, min_value=0, max_value=2**62)
        n = serializers.IntegerField(required=False, default=1, min_value=1)
        override_stale = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        operation_id="generate_create",
        summary="Generate images from a prompt, each with its contributor shares",
        description="`n` images from consecutive seeds (a random first seed unless given); at most "
        "GENERATOR_MAX_IMAGES_PER_REQUEST per request. Only an operator may override a stale model.",
        request=GenerateInputSerializer,
        responses={
            201: inline_serializer("GeneratedImages", {"images": GeneratedImageSerializer(many=True)}),
            409: OpenApiResponse(ErrorSerializer, description="no trained generator, or it is stale"),
        },
    )
    def post(self, request):
        data = self.GenerateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        images = services.generated_images_create(**data.validated_data, user=request.user)
        ser = GeneratedImageSerializer(images, many=True, context={"request": request})
        return Response({"images": ser.data}, status=201)


class GeneratedImageDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(operation_id="generated_retrieve", responses=GeneratedImageSerializer)
    def get(self, request, image_id: int):
        user = None if is_operator(request.user) else request.user
        image = selectors.generated_image_list(user=user).filter(pk=image_id).first()
        if image is None:
            raise NotFound("Not found.")
        return Response(GeneratedImageSerializer(image, context={"request": request}).data)


class GeneratorModelListApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        operation_id="generators_list",
        summary="Generator models, the 50 newest",
        responses=GeneratorModelSerializer(many=True),
    )
    def get(self, request):
        return Response(GeneratorModelSerializer(GeneratorModel.objects.all()[:50], many=True).data)


class _BytesRenderer(BaseRenderer):
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class CsvRenderer(_BytesRenderer):
    media_type, format = "text/csv", "csv"


class PngRenderer(_BytesRenderer):
    media_type, format = "image/png", "png"


class SvgRenderer(_BytesRenderer):
    media_type, format = "image/svg+xml", "svg"


def _when(value: str | None, name: str) -> dt.datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None and (day := parse_date(value)) is not None:
        parsed = dt.datetime.combine(day, dt.time.min)
    if parsed is None:
        raise ApplicationError(f"{name} is not a date or datetime: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


ShareReportSerializer = inline_serializer(
    "ContributorShareReport",
    {
        "method": serializers.ChoiceField(choices=AttributionRecord.Method.values),
        "label": serializers.CharField(help_text='"influence" (gradient) or "similarity"'),
        "start": serializers.DateTimeField(allow_null=True),
        "end": serializers.DateTimeField(allow_null=True),
        "pool": serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=True),
        "images": serializers.IntegerField(),
        "rows": inline_serializer(
            "ContributorShareRow",
            {
                "contributor": serializers.CharField(),
                "total_share": serializers.FloatField(),
                "generations": serializers.IntegerField(),
                "payout": serializers.DecimalField(max_digits=30, decimal_places=10, coerce_to_string=True),
            },
            many=True,
        ),
    },
)


class ContributorShareReportApi(APIView):
    """?start=&end=&pool=&method=gradient|similarity&format=json|csv|png|svg (operators only)."""

    permission_classes = [IsOperator]
    renderer_classes = [JSONRenderer, CsvRenderer, PngRenderer, SvgRenderer]

    @extend_schema(
        operation_id="reports_contributor_shares",
        summary="Each contributor's share of the generations in a period, and its part of a payout pool",
        parameters=[
            OpenApiParameter("start", str, description="date or datetime (UTC unless it says), inclusive"),
            OpenApiParameter("end", str, description="date or datetime (UTC unless it says), exclusive"),
            OpenApiParameter("pool", str, description="the amount to share out, a non-negative number"),
            OpenApiParameter("method", enum=AttributionRecord.Method.values, default="gradient"),
            OpenApiParameter("format", enum=["json", "csv", "png", "svg"], default="json"),
        ],
        responses={
            (200, "application/json"): ShareReportSerializer,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="the report as CSV"),
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="the report as a chart"),
            (200, "image/svg+xml"): OpenApiResponse(OpenApiTypes.BINARY, description="the chart as SVG"),
        },
    )
    def get(self, request):
        q = request.query_params
        method = q.get("method", AttributionRecord.Method.GRADIENT)
        if method not in AttributionRecord.Method.values:
            raise ApplicationError("method must be gradient or similarity")
        try:
            pool = Decimal(q.get("pool", "0"))
        except InvalidOperation as exc:
            raise ApplicationError("pool must be a number") from exc
        if not pool.is_finite() or pool < 0:
            raise ApplicationError("pool must be a non-negative number")
        report = selectors.contributor_share_report(
            start=_when(q.get("start"), "start"), end=_when(q.get("end"), "end"), method=method, pool=pool
        )
        fmt = request.accepted_renderer.format
        if fmt == "json":
            return Response(report.as_dict())
        from generator.reports import report_chart, report_csv

        if fmt == "csv":
            resp = HttpResponse(report_csv(report), content_type="text/csv")
            resp["Content-Disposition"] = f'attachment; filename="contributor-shares-{method}.csv"'
            return resp
        return HttpResponse(report_chart(report, fmt=fmt), content_type=request.accepted_renderer.media_type)

    def perform_content_negotiation(self, request, force=False):
        # DRF answers an unknown ?format= with a bare 404; it is a bad parameter, and says which ones exist
        formats = [renderer.format for renderer in self.get_renderers()]
        if not force and request.query_params.get("format", formats[0]) not in formats:
            raise ApplicationError(f"format must be one of {', '.join(formats)}")
        return super().perform_content_negotiation(request, force)

    def finalize_response(self, request, response, *args, **kwargs):
        # an error is JSON in the API's one error shape, whatever format the report was asked in
        if getattr(response, "exception", False):
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)
