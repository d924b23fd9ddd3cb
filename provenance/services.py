"""Writes for provenance: collections, contributors and the ingest of folders and manifests."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.pool
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core import leases
from core.exceptions import ApplicationError
from core.urlnorm import host_of
from provenance.datasets.layouts import LayoutError, detect
from provenance.datasets.readers import Record, count_rows, iter_records
from provenance.ingest_items import ItemInput, ItemResult, read_item, url_only_result
from provenance.manifests import (
    IMG2DATASET_DIRECTIVES,
    ManifestError,
    NotDownloaded,
    RowError,
    record_to_item,
)
from provenance.models import Asset, Collection, Contributor, ContributorAlias, IngestRun, IngestShard, Signal
from provenance.names import clean_creator

log = logging.getLogger(__name__)
BATCH = 200
# image bytes held at once by one shard reader (a batch of tar members or Parquet rows)
BATCH_BYTES = 64 * 2**20
MAX_STORED_ERRORS = 1000
Progress = Callable[[IngestRun], None]
# img2dataset hashes what it downloaded, then re-encodes unless told not to (--skip_reencode with the source's format)
SHA256_MISMATCH = (
    "the dataset's sha256 column differs from the image bytes (re-encoded after download?); kept in extra"
)
ReadMany = Callable[[list[ItemInput]], list[ItemResult]]


def collection_get_or_create(*, name: str) -> Collection:
    collection, _ = Collection.objects.get_or_create(name=name)
    return collection


def contributor_for_credit(
    *, raw: str, cache: dict[str, Contributor | None] | None = None
) -> Contributor | None:
    """The contributor a raw credit string names, created on first sight; the raw string is kept as an alias."""
    cache = {} if cache is None else cache
    if raw in cache:
        return cache[raw]
    alias = ContributorAlias.objects.select_related("contributor").filter(raw_name=raw[:500]).first()
    if alias:
        cache[raw] = alias.contributor
        return alias.contributor
    clean = clean_creator(raw)
    contributor = None
    if clean:
        contributor, _ = Contributor.objects.get_or_create(
            name_key=clean.key, defaults={"display_name": clean.display}
        )
        ContributorAlias.objects.get_or_create(raw_name=raw[:500], defaults={"contributor": contributor})
    cache[raw] = contributor
    return contributor


def contributor_link_alias(*, alias_id: int, contributor_id: int) -> ContributorAlias:
    """Move a credit spelling (and the works credited with it) to another contributor: one person, two spellings."""
    with transaction.atomic():
        alias = ContributorAlias.objects.select_for_update().get(id=alias_id)
        target = Contributor.objects.get(id=contributor_id)
        Asset.objects.filter(creator_raw=alias.raw_name, contributor=alias.contributor).update(
            contributor=target
        )
        alias.contributor = target
        alias.save(update_fields=["contributor", "updated_at"])
    return alias


def ingest_run_create(
    *,
    path: str = "",
    paths: list[str] | None = None,
    collection_name: str,
    raster_root: str = "",
    allow_roots: list[str] | None = None,
    refused_directives: str = IMG2DATASET_DIRECTIVES,
) -> IngestRun:
    """Recognise the layout of `path` (or of a list/glob of shards) and plan one IngestShard per shard."""
    try:
        plan = detect(paths or [path])
    except LayoutError as exc:
        raise ApplicationError(str(exc)) from exc
    options = {
        "base_dir": str(plan.root),
        "allow_roots": [str(Path(r).resolve()) for r in allow_roots or []],
        "refused_directives": refused_directives,
    }
    if raster_root:
        options["raster_root"] = str(Path(raster_root).resolve())
    single = len(plan.shards) == 1 and plan.layout != "folder"
    with transaction.atomic():
        run = IngestRun.objects.create(
            collection=collection_get_or_create(name=collection_name),
            path=plan.shards[0] if single else str(plan.root),
            layout=plan.layout,
            options=options,
        )
        shards = [
            IngestShard(run=run, index=i, path=shard, rows_total=count_rows(plan.layout, shard))
            for i, shard in enumerate(plan.shards)
        ]
        IngestShard.objects.bulk_create(shards)
        run.total = sum(s.rows_total or 0 for s in shards)
        run.save(update_fields=["total"])
    return run


JOB, SHARD, FINISH = "ingest_run", "ingest_shard", "ingest_finish"


def job_key(run_id: int) -> str:
    return leases.job_key(JOB, run_id)


def ingest_run_start(*, run_id: int, run_here: bool = False) -> bool:
    """pending/failed -> running, with one lease per shard still to read and one for the finish (a failed run's
    unfinished shards start afresh). False when it is running or done already (another worker has it).
    run_here: this process reads the shards itself; otherwise they are sent to the workers."""
    with transaction.atomic():
        started = IngestRun.objects.filter(
            id=run_id, status__in=[IngestRun.Status.PENDING, IngestRun.Status.FAILED]
        ).update(status=IngestRun.Status.RUNNING, started_at=timezone.now(), finished_at=None)
        if started:
            leases.leases_plan(job=job_key(run_id), units=_units(run_id), queue=_queue(), run_here=run_here)
            leases.leases_job_reopen(job=job_key(run_id), run_here=run_here)
    if started and not run_here:
        leases.leases_dispatch(job=job_key(run_id))
    return bool(started)


def _queue() -> str:
    return settings.PROVENANT_INGEST_QUEUE


def _units(run_id: int) -> list[leases.Unit]:
    shard_ids = IngestShard.objects.filter(run_id=run_id).order_by("index").values_list("id", flat=True)
    shards = [
        leases.Unit(SHARD, str(i), "provenance.tasks.ingest_shard_task", [run_id, i]) for i in shard_ids
    ]
    finish = leases.Unit(
        FINISH, str(run_id), "provenance.tasks.ingest_run_finish_task", [run_id], after_all=True
    )
    return [*shards, finish]


def ingest_run_execute(
    *, run_id: int, progress: Progress | None = None, workers: int | None = None
) -> IngestRun:
    """Run (or resume) an ingest in this process, shard after shard. Safe to run twice: a shard resumes at the
    row it reached, and works already in the collection are skipped before decoding."""
    if not ingest_run_start(run_id=run_id, run_here=True):
        return IngestRun.objects.get(id=run_id)
    started = time.monotonic()
    try:
        with reader(workers or settings.PROVENANT_INGEST_WORKERS) as read_many:
            for shard_id in ingest_open_shards(run_id):
                ingest_shard_execute(
                    shard_id=shard_id, worker="local", read_many=read_many, progress=progress
                )
    except BaseException:
        _shards_interrupted(run_id)
        ingest_run_finish(run_id=run_id, elapsed=time.monotonic() - started)
        raise
    return ingest_run_finish(run_id=run_id, elapsed=time.monotonic() - started)


def ingest_open_shards(run_id: int) -> list[int]:
    return list(
        IngestShard.objects.filter(run_id=run_id)
        .exclude(status=IngestShard.Status.DONE)
        .order_by("index")
        .values_list("id", flat=True)
    )


def _shards_interrupted(run_id: int) -> None:
    IngestShard.objects.filter(run_id=run_id, status=IngestShard.Status.RUNNING).update(
        status=IngestShard.Status.FAILED, error="interrupted"
    )


def ingest_run_finish(*, run_id: int, elapsed: float | None = None) -> IngestRun:
    """done when every shard is, failed otherwise (a later run resumes the failed shards)."""
    run = IngestRun.objects.get(id=run_id)
    shards = list(run.shards.values_list("status", "path", "error"))
    failed = [(path, error) for status, path, error in shards if status != IngestShard.Status.DONE]
    run.status = IngestRun.Status.FAILED if failed else IngestRun.Status.DONE
    run.finished_at = timezone.now()
    if elapsed is None and run.started_at:
        elapsed = (run.finished_at - run.started_at).total_seconds()
    run.images_per_second = round(run.processed / max(elapsed or 0, 1e-6), 2)
    notes = [{"item": path, "reason": error or "not finished"} for path, error in failed]
    run.errors = (run.errors + notes)[-MAX_STORED_ERRORS:]
    run.save()
    if failed:
        leases.leases_job_fail(job=job_key(run_id), error="; ".join(f"{p}: {e}" for p, e in failed)[:2000])
    else:
        leases.leases_job_end(job=job_key(run_id))
    return run


def ingest_run_finish_leased(*, run_id: int, holder: str) -> IngestRun:
    """The finish step under its lease: done once, by one worker, after every shard."""
    with leases.lease_hold(kind=FINISH, unit=str(run_id), holder=holder) as held:
        if held is None:
            return IngestRun.objects.get(id=run_id)
        with transaction.atomic():
            run = ingest_run_finish(run_id=run_id)
            leases.lease_complete(held)
    return run


def ingest_run_fail(*, run_id: int, error: str) -> None:
    """A run that cannot finish (a shard failed every attempt) ends failed with the reason; later runs resume."""
    _shards_interrupted(run_id)
    with transaction.atomic():
        run = IngestRun.objects.select_for_update().get(id=run_id)
        if run.status != IngestRun.Status.DONE:
            run.status, run.finished_at = IngestRun.Status.FAILED, timezone.now()
            run.errors = (run.errors + [{"item": run.path, "reason": error}])[-MAX_STORED_ERRORS:]
            run.save(update_fields=["status", "finished_at", "errors"])
    leases.leases_job_fail(job=job_key(run_id), error=error)
    log.error("ingest run %s failed: %s", run_id, error)


def ingest_shard_execute(
    *, shard_id: int, worker: str, read_many: ReadMany, progress: Progress | None = None
) -> IngestShard:
    """Read one shard under its lease, resuming at the row it reached. A shard already done, or held by a live
    worker, is left alone."""
    with leases.lease_hold(kind=SHARD, unit=str(shard_id), holder=worker) as held:
        if held is not None:
            _shard_read(shard_id, held, read_many, progress)
    return IngestShard.objects.get(id=shard_id)


def _shard_read(shard_id: int, held: leases.Held, read_many: ReadMany, progress: Progress | None) -> None:
    from pyarrow import ArrowException  # here, not at the top: the web process starts without pyarrow

    IngestShard.objects.filter(id=shard_id).update(status=IngestShard.Status.RUNNING, error="")
    shard = IngestShard.objects.select_related("run__collection").get(id=shard_id)
    run = shard.run
    records = iter_records(
        run.layout,
        shard.path,
        Path(run.options["base_dir"]),
        shard.rows_done,
        run.options.get("raster_root", ""),
    )
    contributors: dict[str, Contributor | None] = {}
    try:
        for batch in _batches(records):
            _ingest_batch(shard, batch, read_many, contributors, held)
            if progress:
                run.refresh_from_db()
                progress(run)
    except (ManifestError, LayoutError, OSError, tarfile.TarError, ArrowException) as exc:
        # the shard as a whole is unreadable (truncated tar, corrupt Parquet): it fails, the others go on
        status, error = IngestShard.Status.FAILED, str(exc)[:2000]
        log.warning("ingest shard %s failed: %s", shard.path, exc)
    else:
        status, error = IngestShard.Status.DONE, ""
    with transaction.atomic():
        leases.lease_complete(held, failed=error)  # failed: a later run of the ingest reads it again
        IngestShard.objects.filter(id=shard_id).update(status=status, error=error)


@dataclass
class _Sorted:
    """One batch's rows by what becomes of them."""

    todo: list[ItemInput] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    not_downloaded: list[NotDownloaded] = field(default_factory=list)


def _sort(run: IngestRun, batch: list[Record]) -> _Sorted:
    base_dir, roots = Path(run.options["base_dir"]), run.options.get("allow_roots", [])
    store_dir = str(settings.PROVENANT_DATASET_IMAGES_DIR)
    out = _Sorted()
    for record in batch:
        outcome = record_to_item(record, base_dir, roots)
        if isinstance(outcome, ItemInput):
            outcome.store_dir = store_dir
            out.todo.append(outcome)
        elif isinstance(outcome, NotDownloaded):
            out.not_downloaded.append(outcome)
        else:
            out.errors.append(outcome)
    return out


def _ingest_batch(
    shard: IngestShard, batch: list[Record], read_many: ReadMany, contributors: dict, held: leases.Held
) -> None:
    run = shard.run
    rows = _sort(run, batch)
    known = set(
        Asset.objects.filter(
            collection=run.collection, source__in=[i.source[:2000] for i in rows.todo]
        ).values_list("source", flat=True)
    )
    results = read_many([item for item in rows.todo if item.source[:2000] not in known])
    if settings.PROVENANT_INGEST_BATCH_SLEEP_S:
        time.sleep(settings.PROVENANT_INGEST_BATCH_SLEEP_S)  # test hook: a window in which to kill the worker
    errors = rows.errors + [RowError(r.source, r.reason) for r in results if not r.ok]
    stored = [r for r in results if r.ok]
    mismatches = [RowError(r.source, SHA256_MISMATCH) for r in stored if r.sha256_mismatch]
    with transaction.atomic():
        # renewing inside the batch's transaction locks the lease: a worker that lost it stores nothing
        if not leases.lease_renew(held):
            raise leases.LeaseLost(f"ingest shard {shard.id} was taken over")
        new = _store(run.collection, stored, contributors)
        _store_refusals(run, rows.not_downloaded)
        IngestShard.objects.filter(id=shard.id).update(rows_done=batch[-1].number + 1)
        _record_batch(
            run,
            len(batch),
            new=new,
            skipped=len(known) + sum(1 for e in errors if e.skip),
            errors=errors,
            mismatches=mismatches,
            not_downloaded=Counter(n.status for n in rows.not_downloaded),
        )


def _store_refusals(run: IngestRun, rows: list[NotDownloaded]) -> None:
    """img2dataset refused these URLs for an X-Robots-Tag directive: no work, but the URL's signal is kept."""
    refused = [r for r in rows if r.refused_by_header and r.url]
    Signal.objects.bulk_create(
        [
            Signal(
                kind=Signal.Kind.X_ROBOTS_TAG,
                url=r.url[:2000],
                value=run.options.get("refused_directives", IMG2DATASET_DIRECTIVES),
                location=f"img2dataset error_message: {r.reason}"[:500],
            )
            for r in refused
        ],
        ignore_conflicts=True,
    )


def _batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    """At most BATCH rows and about BATCH_BYTES of image bytes at a time."""
    batch: list[Record] = []
    size = 0
    for record in records:
        batch.append(record)
        size += len(record.data or b"")
        if len(batch) >= BATCH or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


class reader:
    """Decodes and hashes items, in worker processes when there are several cores to use."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool: multiprocessing.pool.Pool | None = None

    def __enter__(self) -> Callable[[list[ItemInput]], list[ItemResult]]:
        if self.workers > 1:
            # spawn, not fork: a forked child would share (and could close) the parent's database connection
            self.pool = multiprocessing.get_context("spawn").Pool(self.workers)
        return self.read_many

    def read_many(self, items: list[ItemInput]) -> list[ItemResult]:
        limit = settings.PROVENANT_MAX_IMAGE_PIXELS
        with_pixels = [i for i in items if i.path or i.data is not None]
        if self.pool and len(with_pixels) > 1:
            results = self.pool.starmap(read_item, [(i, limit) for i in with_pixels], chunksize=4)
        else:
            results = [read_item(i, limit) for i in with_pixels]
        return results + [url_only_result(i) for i in items if not i.path and i.data is None]

    def __exit__(self, *exc_info) -> None:
        if self.pool:
            self.pool.terminate()


def _store(collection: Collection, results: list[ItemResult], contributors: dict) -> int:
    if not results:
        return 0
    with transaction.atomic():
        assets = [
            Asset(
                collection=collection,
                source=r.source[:2000],
                contributor=contributor_for_credit(raw=r.creator_raw, cache=contributors)
                if r.creator_raw
                else None,
                **_asset_fields(r),
            )
            for r in results
        ]
        Asset.objects.bulk_create(assets, ignore_conflicts=True)
        _store_signals(collection, results)
    return len(assets)


def _asset_fields(result: ItemResult) -> dict:
    fields = dict(result.fields)
    url = fields.pop("url", "") or (
        result.source if result.source.startswith(("http://", "https://")) else ""
    )
    fields["url"] = url[:2000]
    if url:
        fields["domain"] = host_of(url)
    return fields


def _store_signals(collection: Collection, results: list[ItemResult]) -> None:
    with_signals = [r for r in results if r.signals]
    if not with_signals:
        return
    ids = dict(
        Asset.objects.filter(collection=collection, source__in=[r.source for r in with_signals]).values_list(
            "source", "id"
        )
    )
    Signal.objects.bulk_create(
        [Signal(asset_id=ids[r.source], **s) for r in with_signals for s in r.signals if r.source in ids],
        ignore_conflicts=True,
    )


def _record_batch(
    run: IngestRun,
    seen: int,
    *,
    new: int,
    skipped: int,
    errors: list[RowError],
    mismatches: list[RowError],
    not_downloaded: Counter,
) -> None:
    """Counts with F() (several shards write at once); lists and status counts under a row lock."""
    failed = [e for e in errors if not e.skip]
    IngestRun.objects.filter(id=run.id).update(
        processed=F("processed") + seen,
        new=F("new") + new,
        skipped=F("skipped") + skipped,
        failed=F("failed") + len(failed),
        sha256_mismatches=F("sha256_mismatches") + len(mismatches),
    )
    noted = failed + mismatches
    if noted or not_downloaded:
        locked = IngestRun.objects.select_for_update().only("errors", "not_downloaded").get(id=run.id)
        locked.errors = (locked.errors + [{"item": e.source, "reason": e.reason} for e in noted])[
            -MAX_STORED_ERRORS:
        ]
        locked.not_downloaded = dict(Counter(locked.not_downloaded) + not_downloaded)
        locked.save(update_fields=["errors", "not_downloaded"])
    for error in noted:
        log.warning("ingest: %s: %s", error.source, error.reason)
