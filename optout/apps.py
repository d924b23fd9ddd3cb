from django.apps import AppConfig


class OptoutConfig(AppConfig):
    name = "optout"
    default_auto_field = "django.db.models.BigAutoField"
