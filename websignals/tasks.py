"""Thin Celery tasks: one per batch of hosts, by ids, each under its lease (core/leases.py), safe to run twice."""

from __future__ import annotations

from celery import shared_task

from core import leases
from websignals import services

leases.register_job(
    services.JOB, lambda crawl_id, error: services.signal_crawl_fail(crawl_id=crawl_id, error=error)
)


@shared_task(bind=True, acks_late=True, soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300)
def signal_crawl_batch(self, crawl_id: int, index: int) -> str:
    try:
        return services.signal_crawl_batch_run(
            crawl_id=crawl_id, index=index, worker=leases.holder_name(self.request.id)
        )
    except leases.LeaseLost:
        return "taken-over"
    except Exception as exc:
        services.signal_crawl_fail(crawl_id=crawl_id, error=f"batch {index}: {exc.__class__.__name__}: {exc}")
        raise
