"""Manifest build API. Creating a build is for operators (core.permissions); reading builds, their files and diffs is for
any authenticated account (session or API token), and non-operators see published builds only."""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import DefaultPagination
from core.permissions import IsOperator
from core.serializers import ErrorSerializer
from training_filter import selectors, services
from training_filter.models import ManifestBuild


class ManifestBuildOutputSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ManifestBuild
        fields = [
            "id", "status", "input_kind", "input_ref", "input_hash", "as_of", "rules", "embedding_space",
            "shards_total", "shards_done", "progress", "rows_in", "rows_out", "removed", "output_path",
            "content_hash", "error", "trigger", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_progress(self, build: ManifestBuild) -> float:
        return round(build.shards_done / build.shards_total, 4) if build.shards_total else 0.0


NOT_PUBLISHED = OpenApiResponse(ErrorSerializer, description="the build exists but is not published (yet)")


class ManifestBuildListApi(APIView):
    pagination_class = DefaultPagination

    def get_permissions(self):
        return [IsOperator()] if self.request.method == "POST" else [IsAuthenticated()]

    class ManifestBuildCreateInputSerializer(serializers.Serializer):
        collection = serializers.CharField(required=False, allow_blank=True, default="")
        input_path = serializers.CharField(required=False, allow_blank=True, default="")
        as_of = serializers.DateTimeField(required=False, allow_null=True, default=None)

        def validate_input_path(self, value: str) -> str:
            if value and not services.input_path_allowed(value):
                raise serializers.ValidationError(
                    "The input manifest must lie under one of the server's input folders "
                    "(PROVENANT_MANIFEST_INPUT_ROOTS)."
                )
            return value

    @extend_schema(
        operation_id="manifest_builds_list",
        summary="Manifest builds, newest first (published ones only for non-operators)",
        parameters=[
            OpenApiParameter("status", enum=ManifestBuild.Status.values, description="only this status")
        ],
        responses=ManifestBuildOutputSerializer(many=True),
    )
    def get(self, request):
        builds = selectors.manifest_builds_visible_to(
            request.user, status=request.query_params.get("status", "")
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(builds, request, view=self)
        return paginator.get_paginated_response(ManifestBuildOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="manifest_builds_create",
        summary="Start a build from a collection or a Parquet input (operators)",
        request=ManifestBuildCreateInputSerializer,
        responses={
            202: ManifestBuildOutputSerializer,
            404: OpenApiResponse(ErrorSerializer, description="no such collection"),
        },
    )
    def post(self, request):
        data = self.ManifestBuildCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        build = services.manifest_build_create(**data.validated_data, user=request.user, trigger="api")
        return Response(ManifestBuildOutputSerializer(build).data, status=status.HTTP_202_ACCEPTED)


class ManifestBuildDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="manifest_builds_retrieve", responses=ManifestBuildOutputSerializer)
    def get(self, request, build_id: int):
        return Response(
            ManifestBuildOutputSerializer(
                selectors.manifest_build_visible_get(build_id=build_id, user=request.user)
            ).data
        )


class ManifestBuildFilesApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="manifest_builds_files_list",
        summary="The files of a published build, as paths to download",
        responses={
            200: inline_serializer(
                "ManifestBuildFiles",
                {
                    "build": serializers.IntegerField(),
                    "files": serializers.ListField(child=serializers.CharField()),
                },
            ),
            409: NOT_PUBLISHED,
        },
    )
    def get(self, request, build_id: int):
        return Response({"build": build_id, "files": selectors.manifest_build_files(build_id=build_id)})


class ManifestFileDownloadApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="manifest_builds_file_download",
        summary="Download one file of a published build (Parquet data or JSON metadata)",
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="a Parquet file"
            ),
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT, description="manifest.json or stats.json"
            ),
            409: NOT_PUBLISHED,
        },
    )
    def get(self, request, build_id: int, name: str):
        path = selectors.manifest_file_path(build_id=build_id, name=name)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)  # noqa: SIM115


class ManifestBuildDiffApi(APIView):
    permission_classes = [IsAuthenticated]

    class ManifestBuildDiffInputSerializer(serializers.Serializer):
        old = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
        new = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
        limit = serializers.IntegerField(required=False, default=1000, min_value=0, max_value=100_000)

    @extend_schema(
        operation_id="manifest_builds_diff",
        summary="Keys added and removed between two published builds",
        parameters=[ManifestBuildDiffInputSerializer],
        responses={
            200: inline_serializer(
                "ManifestBuildDiff",
                {
                    "old": serializers.IntegerField(),
                    "new": serializers.IntegerField(),
                    "added_count": serializers.IntegerField(),
                    "added": serializers.ListField(
                        child=serializers.CharField(), help_text="at most `limit`"
                    ),
                    "removed_count": serializers.IntegerField(),
                    "removed": serializers.ListField(
                        child=serializers.CharField(), help_text="at most `limit`"
                    ),
                },
            ),
            404: OpenApiResponse(ErrorSerializer, description="no such build"),
            409: NOT_PUBLISHED,
        },
    )
    def get(self, request):
        data = self.ManifestBuildDiffInputSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        args = data.validated_data
        return Response(
            selectors.manifest_build_diff(old_id=args["old"], new_id=args["new"], limit=args["limit"])
        )
