"""The lease reaper, run by Celery beat and by every worker as it starts (config/celery.py)."""

from celery import shared_task

from core import leases


@shared_task(name="core.tasks.leases_reap", ignore_result=True, soft_time_limit=300, time_limit=360)
def leases_reap_task() -> dict[str, int]:
    return leases.leases_reap()
