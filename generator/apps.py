from django.apps import AppConfig


class GeneratorConfig(AppConfig):
    name = "generator"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        try:  # opt-out sits below us and offers the signal; guarded while it is being written
            from optout.signals import optout_activated
        except ImportError:
            return
        from generator.receivers import on_optout_activated

        optout_activated.connect(on_optout_activated, dispatch_uid="generator-mark-stale")
