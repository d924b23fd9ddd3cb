from django.urls import path

from provenance import apis

urlpatterns = [
    path("contributors/", apis.ContributorListApi.as_view(), name="contributor-list"),
    path("contributors/<int:pk>/", apis.ContributorDetailApi.as_view(), name="contributor-detail"),
    path("assets/", apis.AssetListApi.as_view(), name="asset-list"),
    path("assets/<int:pk>/", apis.AssetDetailApi.as_view(), name="asset-detail"),
    path("ingest-runs/", apis.IngestRunListApi.as_view(), name="ingest-run-list"),
    path("ingest-runs/<int:pk>/", apis.IngestRunDetailApi.as_view(), name="ingest-run-detail"),
]
