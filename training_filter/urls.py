from django.urls import path

from training_filter import apis

app_name = "training_filter"
urlpatterns = [
    path("manifests/builds/", apis.ManifestBuildListApi.as_view(), name="build-list"),
    path("manifests/builds/<int:build_id>/", apis.ManifestBuildDetailApi.as_view(), name="build-detail"),
    path("manifests/builds/<int:build_id>/files/", apis.ManifestBuildFilesApi.as_view(), name="build-files"),
    path(
        "manifests/builds/<int:build_id>/files/<path:name>/",
        apis.ManifestFileDownloadApi.as_view(),
        name="build-file",
    ),
    path("manifests/diff/", apis.ManifestBuildDiffApi.as_view(), name="build-diff"),
]
