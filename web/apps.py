from django.apps import AppConfig


class WebConfig(AppConfig):
    """Server-rendered pages for artists and operators: the top layer, it may use every other app."""

    name = "web"
    default_auto_field = "django.db.models.BigAutoField"
