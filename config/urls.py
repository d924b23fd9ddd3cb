from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

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
    path("", include("web.urls")),
]
