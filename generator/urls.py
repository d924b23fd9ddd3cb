from django.urls import path

from generator import apis

urlpatterns = [
    path("generate/", apis.GenerateApi.as_view(), name="generator-generate"),
    path("generated/<int:image_id>/", apis.GeneratedImageDetailApi.as_view(), name="generator-image"),
    path("generators/", apis.GeneratorModelListApi.as_view(), name="generator-models"),
    path("reports/contributor-shares/", apis.ContributorShareReportApi.as_view(), name="generator-report"),
]
