"""Signal crawls: create (hosts split into batches), run a batch (claimed with a conditional UPDATE, fetched,
evidence stored), finish. Every step is safe to run twice: a done batch is skipped, and a host fetched within
max-age is not fetched again."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.exceptions import ApplicationError
from websignals import sources
from websignals.crawl import HostResult, Previous, crawl_hosts
from websignals.models import SignalCrawl, SignalCrawlBatch, SiteEvidence

SETTLED = (SiteEvidence.Outcome.DOCUMENT, SiteEvidence.Outcome.ABSENT)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def signal_crawl_create(
    *,
    collection: str = "",
    input_path: str = "",
    max_age_s: int | None = None,
    headers: bool = False,
    enqueue: bool = True,
) -> SignalCrawl:
    if bool(collection) == bool(input_path):
        raise ApplicationError("Give either a collection name or an input manifest path, not both.")
    urls = sources.collection_urls(collection) if collection else sources.manifest_urls(input_path)
    hosts = sources.hosts_of(urls, with_urls=headers)
    size = settings.WEBSIGNALS_BATCH_HOSTS
    names = sorted(hosts)
    batches = [{h: hosts[h] for h in names[i : i + size]} for i in range(0, len(names), size)]
    with transaction.atomic():
        crawl = SignalCrawl.objects.create(
            source=f"collection:{collection}" if collection else f"input:{input_path}",
            max_age_s=settings.WEBSIGNALS_MAX_AGE_S if max_age_s is None else max_age_s,
            headers=headers,
            hosts_total=len(hosts),
            batches_total=len(batches),
        )
        SignalCrawlBatch.objects.bulk_create(
            [SignalCrawlBatch(crawl=crawl, index=i, hosts=batch) for i, batch in enumerate(batches)]
        )
        if not batches:
            _finish(crawl.pk)
        elif enqueue:
            from websignals.tasks import enqueue_crawl

            transaction.on_commit(lambda: enqueue_crawl(crawl.pk))
    return crawl


def signal_crawl_batch_claim(*, crawl_id: int, index: int, worker: str) -> bool:
    """Pending, already ours (a redelivered task), or held past the lease by a worker that died: two live
    workers never crawl the same hosts at once, so one process's per-host spacing is the host's."""
    stale = timezone.now() - timedelta(seconds=settings.WEBSIGNALS_BATCH_LEASE_S)
    running = Q(status=SignalCrawlBatch.Status.RUNNING) & (Q(claimed_by=worker) | Q(claimed_at__lt=stale))
    claimable = Q(status=SignalCrawlBatch.Status.PENDING) | running
    claimed = SignalCrawlBatch.objects.filter(Q(crawl_id=crawl_id, index=index) & claimable).update(
        status=SignalCrawlBatch.Status.RUNNING, claimed_by=worker, claimed_at=timezone.now()
    )
    return claimed == 1


def signal_crawl_batch_run(
    *, crawl_id: int, index: int, worker: str, on_host: Callable[[HostResult], object] | None = None
) -> str:
    """Crawl one batch. Returns 'done', 'already-done' or 'busy'."""
    batch = SignalCrawlBatch.objects.select_related("crawl").get(crawl_id=crawl_id, index=index)
    if batch.status == SignalCrawlBatch.Status.DONE:
        return "already-done"
    if not signal_crawl_batch_claim(crawl_id=crawl_id, index=index, worker=worker):
        return "busy"
    crawl = batch.crawl
    SignalCrawl.objects.filter(pk=crawl_id, status=SignalCrawl.Status.PENDING).update(
        status=SignalCrawl.Status.RUNNING, started_at=timezone.now()
    )
    now = timezone.now()
    results = asyncio.run(
        crawl_hosts(
            batch.hosts,
            previous_evidence(list(batch.hosts)),
            now=now,
            max_age=timedelta(seconds=crawl.max_age_s),
            in_flight=settings.WEBSIGNALS_HOSTS_IN_FLIGHT,
            on_host=on_host,
        )
    )
    _store(crawl, batch, worker, results)
    return "done"


def _store(crawl: SignalCrawl, batch: SignalCrawlBatch, batch_worker: str, results: list[HostResult]) -> None:
    with transaction.atomic():
        done = SignalCrawlBatch.objects.filter(
            pk=batch.pk, status=SignalCrawlBatch.Status.RUNNING, claimed_by=batch_worker
        ).update(status=SignalCrawlBatch.Status.DONE)
        if not done:
            return  # taken over after the lease, or stored already: the other worker's evidence stands
        SiteEvidence.objects.bulk_create(
            [SiteEvidence(crawl=crawl, **row) for result in results for row in result.rows], batch_size=500
        )
        SignalCrawl.objects.filter(pk=crawl.pk).update(
            hosts_done=F("hosts_done") + len(results),
            hosts_fresh=F("hosts_fresh") + sum(r.fresh for r in results),
            hosts_unreachable=F("hosts_unreachable") + sum(r.unreachable for r in results),
            fetches=F("fetches") + sum(r.fetches for r in results),
            batches_done=F("batches_done") + 1,
        )
    _finish(crawl.pk)


def _finish(crawl_id: int) -> None:
    SignalCrawl.objects.filter(pk=crawl_id, batches_done__gte=F("batches_total")).exclude(
        status=SignalCrawl.Status.DONE
    ).update(status=SignalCrawl.Status.DONE, finished_at=timezone.now())


def signal_crawl_fail(*, crawl_id: int, error: str) -> None:
    SignalCrawl.objects.filter(pk=crawl_id).exclude(status=SignalCrawl.Status.DONE).update(
        status=SignalCrawl.Status.FAILED, error=error[:5000], finished_at=timezone.now()
    )


def previous_evidence(hosts: list[str]) -> dict[str, dict[tuple[str, str], Previous]]:
    """{host: {(document, url for headers else ''): the latest settled evidence}}."""
    found: dict[str, dict[tuple[str, str], Previous]] = {}
    rows = (
        SiteEvidence.objects.filter(host__in=hosts, outcome__in=SETTLED)
        .order_by("host", "document", "url", "-fetched_at", "-id")
        .values_list("host", "document", "url", "fetched_at", "outcome", "body", "etag", "last_modified")
    )
    for host, document, url, fetched_at, outcome, body, etag, last_modified in rows.iterator(chunk_size=2000):
        key = (document, url if document == SiteEvidence.Document.HEADERS else "")
        found.setdefault(host, {}).setdefault(key, Previous(fetched_at, outcome, body, etag, last_modified))
    return found
