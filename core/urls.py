from django.urls import path  # noqa: F401

# Server-rendered pages are mounted here (see the web pages issue).
urlpatterns: list = []
