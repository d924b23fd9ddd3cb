"""Signal crawls: create (hosts split into batches, one lease each: core/leases.py), run a batch (its lease claimed
with a conditional UPDATE and renewed by a heartbeat, fetched, evidence stored with the lease's end), finish. Every step is safe to run twice: a done batch is skipped, and a host fetched within
max-age is not fetched again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core import leases
from core.exceptions import ApplicationError
from websignals import sources
from websignals.crawl import HostResult, Previous, crawl_hosts
from websignals.models import SignalCrawl, SignalCrawlBatch, SiteEvidence

SETTLED = (SiteEvidence.Outcome.DOCUMENT, SiteEvidence.Outcome.ABSENT)


JOB, BATCH = "signal_crawl", "signal_crawl_batch"


def job_key(crawl_id: int) -> str:
    return leases.job_key(JOB, crawl_id)


def _units(crawl_id: int, count: int) -> list[leases.Unit]:
    task = "websignals.tasks.signal_crawl_batch"
    return [leases.Unit(BATCH, f"{crawl_id}:{i}", task, [crawl_id, i]) for i in range(count)]


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
        leases.leases_plan(job=job_key(crawl.pk), units=_units(crawl.pk, len(batches)), run_here=not enqueue)
        if not batches:
            _finish(crawl.pk)
        elif enqueue:
            transaction.on_commit(lambda: leases.leases_dispatch(job=job_key(crawl.pk)))
    return crawl


def signal_crawl_resume(*, crawl_id: int, enqueue: bool) -> None:
    """Every batch not done yet starts afresh: sent to the workers (enqueue), or left to this process."""
    leases.leases_job_reopen(job=job_key(crawl_id), run_here=not enqueue)
    if enqueue:
        leases.leases_dispatch(job=job_key(crawl_id))


def signal_crawl_batch_claim(*, crawl_id: int, index: int, worker: str) -> leases.Held | None:
    """The batch's lease: pending, or held by a worker that stopped heartbeating. Two live workers never crawl
    the same hosts at once, so one process's per-host spacing is the host's."""
    held = leases.lease_claim(kind=BATCH, unit=f"{crawl_id}:{index}", holder=worker)
    if held is not None:
        SignalCrawlBatch.objects.filter(crawl_id=crawl_id, index=index).update(
            status=SignalCrawlBatch.Status.RUNNING
        )
    return held


def signal_crawl_batch_run(
    *, crawl_id: int, index: int, worker: str, on_host: Callable[[HostResult], object] | None = None
) -> str:
    """Crawl one batch. Returns 'done', 'already-done' or 'busy'."""
    batch = SignalCrawlBatch.objects.select_related("crawl").get(crawl_id=crawl_id, index=index)
    if batch.status == SignalCrawlBatch.Status.DONE:
        return "already-done"
    held = signal_crawl_batch_claim(crawl_id=crawl_id, index=index, worker=worker)
    if held is None:
        return "busy"
    with leases.leases_heartbeat([held]):
        try:
            _crawl(batch, held, on_host)
        except BaseException as exc:
            leases.lease_release(held, error=f"{exc.__class__.__name__}: {exc}")
            raise
    return "done"


def _crawl(
    batch: SignalCrawlBatch, held: leases.Held, on_host: Callable[[HostResult], object] | None
) -> None:
    crawl = batch.crawl
    crawl_id = crawl.pk
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
    _store(crawl, batch, held, results)


def _store(crawl: SignalCrawl, batch: SignalCrawlBatch, held: leases.Held, results: list[HostResult]) -> None:
    """The evidence with the lease's end: a worker whose batch was taken over stores nothing, and the other
    worker's evidence stands."""
    with transaction.atomic():
        leases.lease_complete(held)
        SignalCrawlBatch.objects.filter(pk=batch.pk).update(status=SignalCrawlBatch.Status.DONE)
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
    leases.leases_job_fail(job=job_key(crawl_id), error=error)


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
