from django.urls import path

from core.apis import JobUnitListApi

urlpatterns = [path("jobs/units/", JobUnitListApi.as_view(), name="job-units")]
