from django.urls import path

from websignals import apis, views

app_name = "websignals"
urlpatterns = [
    path("api/signals/", apis.HostSignalsApi.as_view(), name="host-signals"),
    path("api/signals/crawls/<int:crawl_id>/", apis.SignalCrawlDetailApi.as_view(), name="crawl-detail"),
    path("signals/", views.host_signals_page, name="page"),
]
