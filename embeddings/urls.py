from django.urls import path

from embeddings.apis import SearchApi, SearchImageApi

urlpatterns = [
    path("search/image/", SearchImageApi.as_view(), name="search-image"),
    path("search/", SearchApi.as_view(), name="search"),
]
