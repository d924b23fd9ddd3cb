"""Manifest build API. Creating a build is for operators (core.permissions); reading builds, their files and diffs is for
any authenticated account (session or API token), and non-operators see published builds only."""

from __future__ import annotations

from django.http import FileResponse
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.exceptions import ApplicationError
from core.pagination import DefaultPagination
from core.permissions import IsOperator, is_operator
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


def _visible(request, build: ManifestBuild) -> ManifestBuild:
    if not is_operator(request.user) and build.status != ManifestBuild.Status.PUBLISHED:
        raise ApplicationError(f"No manifest build {build.pk}.", status_code=404)
    return build


class ManifestBuildListApi(APIView):
    def get_permissions(self):
        return [IsOperator()] if self.request.method == "POST" else [IsAuthenticated()]

    class InputSerializer(serializers.Serializer):
        collection = serializers.CharField(required=False, allow_blank=True, default="")
        input_path = serializers.CharField(required=False, allow_blank=True, default="")
        as_of = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def get(self, request):
        builds = selectors.manifest_build_list(status=request.query_params.get("status", ""))
        if not is_operator(request.user):
            builds = builds.filter(status=ManifestBuild.Status.PUBLISHED)
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(builds, request, view=self)
        return paginator.get_paginated_response(ManifestBuildOutputSerializer(page, many=True).data)

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        build = services.manifest_build_create(**data.validated_data, user=request.user, trigger="api")
        return Response(ManifestBuildOutputSerializer(build).data, status=status.HTTP_202_ACCEPTED)


class ManifestBuildDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request, build_id: int):
        build = _visible(request, selectors.manifest_build_get(build_id=build_id))
        return Response(ManifestBuildOutputSerializer(build).data)


class ManifestBuildFilesApi(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request, build_id: int):
        return Response({"build": build_id, "files": selectors.manifest_build_files(build_id=build_id)})


class ManifestFileDownloadApi(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request, build_id: int, name: str):
        path = selectors.manifest_file_path(build_id=build_id, name=name)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)  # noqa: SIM115


class ManifestBuildDiffApi(APIView):
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        old = serializers.IntegerField()
        new = serializers.IntegerField()
        limit = serializers.IntegerField(required=False, default=1000, min_value=0, max_value=100_000)

    def get(self, request):
        data = self.InputSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        args = data.validated_data
        return Response(
            selectors.manifest_build_diff(old_id=args["old"], new_id=args["new"], limit=args["limit"])
        )
