"""Thin DRF views: generate (with attribution), read images and models, contributor-share reports."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal, InvalidOperation

from django.http import HttpResponse
from django.utils.dateparse import parse_date, parse_datetime
from rest_framework import permissions, serializers
from rest_framework.exceptions import NotFound
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import ApplicationError
from core.permissions import IsOperator, is_operator
from generator import conf, selectors, services
from generator.models import AttributionRecord, GeneratedImage, GeneratorModel


class AttributionSerializer(serializers.ModelSerializer):
    label = serializers.CharField(
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

    class InputSerializer(serializers.Serializer):
        prompt = serializers.CharField(max_length=500)
        seed = serializers.IntegerField(required=False, min_value=0, max_value=2**62)
        n = serializers.IntegerField(required=False, default=1, min_value=1)
        override_stale = serializers.BooleanField(required=False, default=False)

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        limit = conf.get("GENERATOR_MAX_IMAGES_PER_REQUEST")
        if v["n"] > limit:
            raise ApplicationError(f"at most {limit} images per request")
        if v["override_stale"] and not is_operator(request.user):
            raise ApplicationError("only an operator may override a stale model", status_code=403)
        seed = v.get("seed", secrets.randbits(32))
        images = [
            services.generated_image_create(
                prompt=v["prompt"], seed=seed + i, user=request.user, override_stale=v["override_stale"]
            )
            for i in range(v["n"])
        ]
        ser = GeneratedImageSerializer(images, many=True, context={"request": request})
        return Response({"images": ser.data}, status=201)


class GeneratedImageDetailApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

    def get(self, request, image_id: int):
        user = None if is_operator(request.user) else request.user
        image = selectors.generated_image_list(user=user).filter(pk=image_id).first()
        if image is None:
            raise NotFound("Not found.")
        return Response(GeneratedImageSerializer(image, context={"request": request}).data)


class GeneratorModelListApi(APIView):
    permission_classes = [permissions.IsAuthenticated]

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


class ContributorShareReportApi(APIView):
    """?start=&end=&pool=&method=gradient|similarity&format=json|csv|png|svg (operators only)."""

    permission_classes = [IsOperator]
    renderer_classes = [JSONRenderer, CsvRenderer, PngRenderer, SvgRenderer]

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
