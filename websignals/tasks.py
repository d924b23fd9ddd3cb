"""Thin Celery tasks: one per batch of hosts, by ids, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from websignals import services
from websignals.models import SignalCrawlBatch


@shared_task(acks_late=True, soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300)
def signal_crawl_batch(crawl_id: int, index: int) -> str:
    try:
        return services.signal_crawl_batch_run(crawl_id=crawl_id, index=index, worker=services.worker_name())
    except Exception as exc:
        services.signal_crawl_fail(crawl_id=crawl_id, error=f"batch {index}: {exc.__class__.__name__}: {exc}")
        raise


def enqueue_crawl(crawl_id: int) -> None:
    pending = SignalCrawlBatch.objects.filter(crawl_id=crawl_id).exclude(status=SignalCrawlBatch.Status.DONE)
    for index in pending.order_by("index").values_list("index", flat=True):
        signal_crawl_batch.delay(crawl_id, index)
