"""Writes for provenance: collections, contributors and the ingest of folders and manifests."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.exceptions import ApplicationError
from provenance.ingest_items import IMAGE_SUFFIXES, ItemInput, ItemResult, read_item, url_only_result
from provenance.manifests import ManifestError, RowError, iter_manifest_rows, row_to_item
from provenance.models import Asset, Collection, Contributor, ContributorAlias, IngestRun, Signal
from provenance.names import clean_creator

log = logging.getLogger(__name__)
BATCH = 200
MAX_STORED_ERRORS = 1000
MANIFEST_SUFFIXES = {".parquet", ".csv", ".tsv", ".jsonl", ".ndjson", ".gz"}
Progress = Callable[[IngestRun], None]


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


def ingest_run_create(*, path: str, collection_name: str, raster_root: str = "") -> IngestRun:
    source = Path(path)
    if not source.exists():
        raise ApplicationError(f"{path} does not exist")
    if source.is_file() and source.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ApplicationError(f"{path} is neither a folder nor a manifest (.parquet, .csv, .tsv, .jsonl)")
    collection = collection_get_or_create(name=collection_name)
    options = {"raster_root": str(Path(raster_root).resolve())} if raster_root else {}
    return IngestRun.objects.create(collection=collection, path=str(source.resolve()), options=options)


def ingest_run_execute(
    *, run_id: int, progress: Progress | None = None, workers: int | None = None
) -> IngestRun:
    """Run (or resume) an ingest. Safe to run twice: works already in the collection are skipped before decoding."""
    claimed = IngestRun.objects.filter(
        id=run_id, status__in=[IngestRun.Status.PENDING, IngestRun.Status.FAILED]
    )
    # A resumed run recounts what it sees (earlier works now count as skipped) but keeps what it added.
    if not claimed.update(
        status=IngestRun.Status.RUNNING,
        started_at=timezone.now(),
        processed=0,
        skipped=0,
        failed=0,
        errors=[],
    ):
        return IngestRun.objects.get(id=run_id)  # finished already, or another worker has it
    run = IngestRun.objects.get(id=run_id)
    started = time.monotonic()
    try:
        _ingest(run, progress, workers or settings.PROVENANT_INGEST_WORKERS)
    except ManifestError as exc:
        _finish(run, IngestRun.Status.FAILED, started, error=str(exc))
        raise ApplicationError(str(exc)) from exc
    except BaseException:
        _finish(run, IngestRun.Status.FAILED, started, error="interrupted")
        raise
    _finish(run, IngestRun.Status.DONE, started)
    return run


def _finish(run: IngestRun, status: str, started: float, error: str = "") -> None:
    elapsed = max(time.monotonic() - started, 1e-6)
    run.refresh_from_db()
    run.status = status
    run.finished_at = timezone.now()
    run.images_per_second = round(run.processed / elapsed, 2)
    if error:
        run.errors = [*run.errors, {"item": run.path, "reason": error}][-MAX_STORED_ERRORS:]
    run.save()


def _ingest(run: IngestRun, progress: Progress | None, workers: int) -> None:
    root = Path(run.path)
    if root.is_dir():
        items: Iterable[ItemInput | RowError] = _folder_items(root, run.options.get("raster_root", ""))
        items = list(items)
        IngestRun.objects.filter(id=run.id).update(total=len(items))
    else:
        items = (row_to_item(row, n, root.parent) for n, row in enumerate(iter_manifest_rows(root), start=1))
    contributors: dict[str, Contributor | None] = {}
    with _reader(workers) as read_many:
        for batch in _batches(items, BATCH):
            errors = [item for item in batch if isinstance(item, RowError)]
            todo = [item for item in batch if isinstance(item, ItemInput)]
            known = set(
                Asset.objects.filter(
                    collection=run.collection, source__in=[i.source for i in todo]
                ).values_list("source", flat=True)
            )
            fresh = [item for item in todo if item.source not in known]
            results = read_many(fresh)
            errors += [RowError(r.source, r.reason) for r in results if not r.ok]
            new = _store(run.collection, [r for r in results if r.ok], contributors)
            passed_over = sum(1 for e in errors if e.skip)
            errors = [e for e in errors if not e.skip]
            _record_batch(run, len(batch), new=new, skipped=len(known) + passed_over, errors=errors)
            if progress:
                run.refresh_from_db()
                progress(run)


def _folder_items(root: Path, raster_root: str) -> Iterator[ItemInput | RowError]:
    """Every image file under `root`, sorted (stable order: a resumed run walks the same way). Symbolic links
    are never followed: they could point outside the folder, and openclipart's are duplicate entries."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            relative = str(path.relative_to(root))
            if path.suffix.lower() not in IMAGE_SUFFIXES or name.startswith("."):
                continue
            if path.is_symlink():
                yield RowError(relative, "symbolic link: not followed", skip=True)
                continue
            raster = ""
            if raster_root and path.suffix.lower() == ".svg":
                candidate = Path(raster_root) / Path(relative).with_suffix(".png")
                raster = str(candidate) if candidate.is_file() and not candidate.is_symlink() else ""
            yield ItemInput(source=relative, path=str(path), raster_path=raster)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class _reader:
    """Decodes and hashes items, in worker processes when there are several cores to use."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = None

    def __enter__(self) -> Callable[[list[ItemInput]], list[ItemResult]]:
        if self.workers > 1:
            # spawn, not fork: a forked child would share (and could close) the parent's database connection
            self.pool = multiprocessing.get_context("spawn").Pool(self.workers)
        return self.read_many

    def read_many(self, items: list[ItemInput]) -> list[ItemResult]:
        limit = settings.PROVENANT_MAX_IMAGE_PIXELS
        with_pixels = [i for i in items if i.path]
        if self.pool and len(with_pixels) > 1:
            results = self.pool.starmap(read_item, [(i, limit) for i in with_pixels], chunksize=4)
        else:
            results = [read_item(i, limit) for i in with_pixels]
        return results + [url_only_result(i) for i in items if not i.path]

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
        from core.urlnorm import host_of

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


def _record_batch(run: IngestRun, seen: int, *, new: int, skipped: int, errors: list[RowError]) -> None:
    IngestRun.objects.filter(id=run.id).update(
        processed=F("processed") + seen,
        new=F("new") + new,
        skipped=F("skipped") + skipped,
        failed=F("failed") + len(errors),
    )
    if errors:
        run.refresh_from_db(fields=["errors"])
        run.errors = (run.errors + [{"item": e.source, "reason": e.reason} for e in errors])[
            -MAX_STORED_ERRORS:
        ]
        run.save(update_fields=["errors"])
    for error in errors:
        log.warning("ingest skipped %s: %s", error.source, error.reason)
