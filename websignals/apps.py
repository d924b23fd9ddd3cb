from django.apps import AppConfig


class WebsignalsConfig(AppConfig):
    name = "websignals"
    verbose_name = "Web signals"
    default_auto_field = "django.db.models.BigAutoField"
