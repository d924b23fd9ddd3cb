from django.apps import AppConfig


class TrainingFilterConfig(AppConfig):
    name = "training_filter"
    default_auto_field = "django.db.models.BigAutoField"
