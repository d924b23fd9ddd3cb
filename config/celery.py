import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("provenant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _reap_when_a_worker_starts(sender, **kwargs) -> None:
    """A worker that starts after another died picks up its units without waiting for beat: once now (leases that
    are already dead), and once when a lease renewed just before the death has expired."""
    from django.conf import settings

    from core.leases import lease_ttl

    reap = sender.app.tasks["core.tasks.leases_reap"]
    later = lease_ttl().total_seconds() + settings.PROVENANT_LEASE_HEARTBEAT_S
    reap.apply_async(expires=later)
    reap.apply_async(countdown=later, expires=later + settings.PROVENANT_LEASE_REAP_S)
