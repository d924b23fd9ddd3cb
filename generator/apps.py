from django.apps import AppConfig


class GeneratorConfig(AppConfig):
    name = "generator"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from generator.receivers import on_optout_activated
        from optout.signals import optout_activated

        # opt-out sits below us: it sends the signal, we mark the models trained on the work stale
        optout_activated.connect(on_optout_activated, dispatch_uid="generator-mark-stale")
