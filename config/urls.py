"""The site's URLs. Every API URL ends with a slash (DRF's convention, and the pages' too): one spelling per
endpoint. Anything else under /api/, the unslashed spelling included, answers a JSON 404 in the API's error shape
that names the right URL, for every method alike. A redirect would not do: Django's APPEND_SLASH cannot redirect a
POST without losing its body (it refuses to), and a 308 would make every unslashed call cost two requests and hide
the mistake. The pages keep APPEND_SLASH's redirect, which is what a person typing an address wants."""

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, is_valid_path, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView


@csrf_exempt  # it changes nothing, and a POST to a wrong URL should learn that rather than fail the CSRF check
def api_not_found(request: HttpRequest) -> JsonResponse:
    message, extra = f"No API endpoint at {request.path}.", {}
    if not request.path.endswith("/") and is_valid_path(f"{request.path_info}/"):
        message += f" API URLs end with a slash: {request.path}/"
        extra["url"] = f"{request.path}/"
    return JsonResponse({"message": message, "extra": extra}, status=404)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/", include("provenance.urls")),
    path("", include("websignals.urls")),
    path("api/", include("embeddings.urls")),
    path("api/", include("optout.urls")),
    path("api/", include("training_filter.urls")),
    path("api/", include("generator.urls")),
    path("api/", include("core.urls")),
    re_path(r"^api/", api_not_found),  # after every API route: what none of them matched
    path("", include("web.urls")),
]
