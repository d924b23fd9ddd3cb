from django.apps import AppConfig


class OptoutConfig(AppConfig):
    name = "optout"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from optout import receivers

        receivers.connect()
        # search sits below us: it offers the hook, we supply the ids
        from core.exclusions import register_exclusion_provider
        from optout.exclusions import optout_exclusions

        register_exclusion_provider(optout_exclusions)
