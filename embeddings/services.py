"""Indexing: hashes where missing, ORB keypoints, thumbnails and embeddings in shards, then published FAISS
indexes (the embedding space's and the thumbnail space's)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core import leases
from core.exceptions import ApplicationError
from embeddings.encoders.factory import get_encoder
from embeddings.models import IndexRun
from embeddings.search import geometry, index, keypoints, parts, thumbnails
from provenance.hashing import compute_hashes
from provenance.imaging import ImageRejected, load_rgb_path
from provenance.models import Asset, Collection

logger = logging.getLogger(__name__)
MAX_ERRORS_KEPT = 100


@dataclass
class _Item:
    asset_id: int
    local_path: str
    needs_hash: bool
    needs_embedding: bool
    needs_features: bool
    needs_thumbnail: bool
    needs_parts: bool


@dataclass
class _Decoded:
    item: _Item
    image: object | None = None
    hashes: tuple[int, str, int] | None = None
    thumbnail: np.ndarray | None = None
    parts: list | None = None
    error: str = ""


def _prepare(item: _Item) -> _Decoded:
    """Runs in a worker thread: decoding, hashing and ORB all release the GIL for most of their time."""
    try:
        image = load_rgb_path(item.local_path, max_pixels=settings.PROVENANT_MAX_IMAGE_PIXELS).image
    except (ImageRejected, OSError) as exc:
        return _Decoded(item, error=str(exc)[:300])
    decoded = _Decoded(item, image=image)
    if item.needs_hash:
        decoded.hashes = compute_hashes(image)
    if item.needs_features:
        geometry.save_features(item.asset_id, geometry.orb_features(image))
    if item.needs_thumbnail:
        decoded.thumbnail = thumbnails.thumbnail_vector(image)
    if item.needs_parts:
        decoded.parts = parts.work_parts(image)
    return decoded


def _work_items(
    assets, done: set[int], thumbnailed: set[int], parted: set[int] | None, *, works: bool = True
) -> list[_Item]:
    """What each asset still needs; `parted` is None when part embeddings are not wanted, `works` False when
    only parts are (a background parts run)."""
    items = []
    for asset_id, local_path, phash, pdq in (
        assets.exclude(local_path="").order_by("id").values_list("id", "local_path", "phash", "pdq")
    ):
        item = _Item(
            asset_id,
            local_path,
            needs_hash=works and (phash is None or not pdq),
            needs_embedding=works and asset_id not in done,
            needs_features=works and settings.PROVENANT_INDEX_ORB and not geometry.has_features(asset_id),
            needs_thumbnail=works and asset_id not in thumbnailed,
            needs_parts=parted is not None and asset_id not in parted,
        )
        if (
            item.needs_hash
            or item.needs_embedding
            or item.needs_features
            or item.needs_thumbnail
            or item.needs_parts
        ):
            items.append(item)
    return items


def _save_hashes(decoded: list[_Decoded]) -> int:
    assets = []
    for d in decoded:
        if d.hashes:
            phash, pdq, quality = d.hashes
            assets.append(Asset(id=d.item.asset_id, phash=phash, pdq=pdq, pdq_quality=quality))
    Asset.objects.bulk_update(assets, ["phash", "pdq", "pdq_quality"])
    return len(assets)


def _collection(name: str) -> Collection:
    collection = Collection.objects.filter(name=name).first()
    if collection is None:
        raise ApplicationError(f"no collection named {name!r}", status_code=404)
    return collection


def index_collection(
    *,
    collection_name: str,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: bool = False,
    parts: str = "inline",
) -> IndexRun:
    """Index every asset of a collection not yet in the current embedding space, then publish the index.

    `parts`: "inline" embeds each work's parts (embeddings.search.parts) here too; "background" publishes the
    whole-work index first and leaves the parts to Celery batch tasks (index_start), so a site can serve
    searches while they arrive; "off" skips them.

    Resumable: each finished shard is on disk, so a crashed or interrupted run resumes where it stopped, and a
    second run over an indexed collection embeds nothing and leaves the published index untouched.
    """
    if parts not in ("inline", "background", "off"):
        raise ApplicationError(f"parts must be inline, background or off, not {parts!r}")
    collection = _collection(collection_name)
    encoder = get_encoder()
    run = IndexRun.objects.create(
        collection=collection,
        space_id=encoder.space.id,
        status=IndexRun.Status.RUNNING,
        started_at=timezone.now(),
        kind=IndexRun.Kind.ALL if parts == "inline" else IndexRun.Kind.WORKS,
    )
    try:
        _index_items(
            run,
            collection,
            encoder,
            batch_size or settings.PROVENANT_INDEX_BATCH,
            workers or settings.PROVENANT_INDEX_WORKERS,
            progress,
            with_parts=parts == "inline" and settings.PROVENANT_INDEX_PARTS,
        )
    except Exception as exc:
        index_fail(run_id=run.pk, error=f"run failed: {exc}")
        raise
    if parts == "background" and settings.PROVENANT_INDEX_PARTS:
        index_start(collection_name=collection_name, kind=IndexRun.Kind.PARTS)
    return run


class _ShardBuffer:
    """Vectors waiting to be written as one shard of a space."""

    def __init__(self, space):
        self.space, self.ids, self.vectors = space, [], []

    def add(self, ids: list[int], vectors: np.ndarray) -> None:
        self.ids.extend(ids)
        self.vectors.append(vectors)

    def flush(self, minimum: int = 1) -> int:
        """Write a shard once at least `minimum` vectors wait; returns how many were written."""
        count = len(self.ids)
        if count == 0 or count < minimum:
            return 0
        index.write_shard(self.space, np.array(self.ids, dtype=np.int64), np.concatenate(self.vectors))
        self.ids, self.vectors = [], []
        return count


@dataclass
class _Buffers:
    embedded: _ShardBuffer
    thumbnailed: _ShardBuffer
    parted: _ShardBuffer | None

    @classmethod
    def of(cls, space, with_parts: bool) -> _Buffers:
        part_space = parts.parts_space(space) if with_parts else None
        return cls(
            _ShardBuffer(space),
            _ShardBuffer(thumbnails.SPACE),
            _ShardBuffer(part_space) if part_space else None,
        )

    def add(self, decoded: list[_Decoded], encoder) -> None:
        """Encode what the decoded works need into the buffers (one forward pass for works, one for parts)."""
        to_embed = [d for d in decoded if d.item.needs_embedding]
        if to_embed:
            self.embedded.add(
                [d.item.asset_id for d in to_embed], encoder.encode_images([d.image for d in to_embed])
            )
        thumbnails = [(d.item.asset_id, d.thumbnail) for d in decoded if d.thumbnail is not None]
        if thumbnails:
            self.thumbnailed.add([i for i, _ in thumbnails], np.stack([t for _, t in thumbnails]))
        work_parts = [(d.item.asset_id, d.parts) for d in decoded if d.parts]
        if work_parts and self.parted is not None:
            self.parted.add(
                [i for i, ps in work_parts for _ in ps],
                encoder.encode_images([part for _, ps in work_parts for part in ps]),
            )

    def flush(self, minimum: int = 1) -> tuple[int, int]:
        """(works, works' parts) written as shards, once `minimum` works wait in a buffer."""
        self.thumbnailed.flush(minimum=minimum)
        parted = self.parted.flush(minimum=minimum * parts.PER_WORK) // parts.PER_WORK if self.parted else 0
        return self.embedded.flush(minimum=minimum), parted


def _decode(pool: ThreadPoolExecutor, run: IndexRun, items: list[_Item]) -> list[_Decoded]:
    decoded = list(pool.map(_prepare, items))
    _record_failures(run, [d for d in decoded if d.error])
    ok = [d for d in decoded if not d.error]
    run.hashed += _save_hashes(ok)
    return ok


def _index_items(
    run: IndexRun,
    collection: Collection,
    encoder,
    batch_size: int,
    workers: int,
    progress: bool,
    *,
    with_parts: bool,
):
    space = encoder.space
    done = set(index.stored_ids(space).tolist())
    parted = set(index.stored_ids(parts.parts_space(space)).tolist()) if with_parts else None
    assets = Asset.objects.filter(collection=collection)
    items = _work_items(assets, done, set(index.stored_ids(thumbnails.SPACE).tolist()), parted)
    run.total = assets.count()
    run.skipped = run.total - sum(1 for i in items if i.needs_embedding)
    started = time.perf_counter()
    buffers = _Buffers.of(space, with_parts)
    bar = _progress_bar(len(items), progress)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(items), batch_size):
            buffers.add(_decode(pool, run, items[start : start + batch_size]), encoder)
            written, parts_written = buffers.flush(minimum=settings.PROVENANT_INDEX_SHARD_SIZE)
            if written or parts_written:  # progress in the DB each time a shard is safely on disk
                run.embedded += written
                run.parts_embedded += parts_written
                run.save(update_fields=[*PROGRESS_FIELDS, "total", "skipped"])
            bar.update(min(batch_size, len(items) - start))
    bar.close()
    written, parts_written = buffers.flush()
    run.embedded += written
    run.parts_embedded += parts_written
    meta = _publish(space)
    _build_keypoints(any(i.needs_features for i in items))
    _finish(run, meta, len(items), time.perf_counter() - started)


PROGRESS_FIELDS = ["embedded", "parts_embedded", "hashed", "failed", "errors"]


def _build_keypoints(features_changed: bool) -> None:
    if features_changed or not keypoints.is_built():
        keypoints.build(
            list(Asset.objects.exclude(local_path="").order_by("id").values_list("id", flat=True))
        )


def _finish(run: IndexRun, meta: dict, items: int, seconds: float) -> None:
    run.index_kind, run.index_total = meta["kind"], meta["ntotal"]
    run.images_per_second = round(items / seconds, 2) if items and seconds > 0 else None
    run.status, run.finished_at = IndexRun.Status.DONE, timezone.now()
    run.save()


def _publish(space) -> dict:
    """Publish the thumbnail index, the part index and the embedding space's; returns the embedding index's
    metadata."""
    index.publish_index(thumbnails.SPACE, exact_max=settings.PROVENANT_INDEX_EXACT_MAX)
    if settings.PROVENANT_INDEX_PARTS and index.shard_paths(parts.parts_space(space)):
        index.publish_index(parts.parts_space(space), exact_max=settings.PROVENANT_INDEX_EXACT_MAX)
    return index.publish_index(space, exact_max=settings.PROVENANT_INDEX_EXACT_MAX)


# --- indexing through Celery, one task per batch -------------------------------------------------------------


def index_start(
    *, collection_name: str, kind: str = IndexRun.Kind.ALL, batch_size: int | None = None
) -> IndexRun:
    """Index a collection through Celery: one task per batch of works, so several workers share a big
    collection, and a last task that publishes the indexes. kind "parts" embeds only the works' parts (after a
    whole-work index: the site serves searches meanwhile, and each batch publishes the part index as it goes)."""
    collection = _collection(collection_name)
    space = get_encoder().space
    wanted = kind in (IndexRun.Kind.ALL, IndexRun.Kind.PARTS) and settings.PROVENANT_INDEX_PARTS
    parted = set(index.stored_ids(parts.parts_space(space)).tolist()) if wanted else None
    items = _work_items(
        Asset.objects.filter(collection=collection),
        set(index.stored_ids(space).tolist()),
        set(index.stored_ids(thumbnails.SPACE).tolist()),
        parted,
        works=kind != IndexRun.Kind.PARTS,
    )
    size = batch_size or settings.PROVENANT_INDEX_TASK_BATCH
    batches = [[i.asset_id for i in items[n : n + size]] for n in range(0, len(items), size)]
    with transaction.atomic():
        run = IndexRun.objects.create(
            collection=collection,
            space_id=space.id,
            kind=kind,
            status=IndexRun.Status.RUNNING,
            started_at=timezone.now(),
            total=len(items),
            batches_total=len(batches),
        )
        leases.leases_plan(job=job_key(run.pk), units=_units(run.pk, batches))
        transaction.on_commit(lambda: leases.leases_dispatch(job=job_key(run.pk)))
    return run


JOB, BATCH, FINISH = "index_run", "index_batch", "index_finish"


def job_key(run_id: int) -> str:
    return leases.job_key(JOB, run_id)


def _units(run_id: int, batches: list[list[int]]) -> list[leases.Unit]:
    units = [
        leases.Unit(BATCH, f"{run_id}:{n}", "embeddings.tasks.index_batch_task", [run_id, n, ids])
        for n, ids in enumerate(batches)
    ]
    return [
        *units,
        leases.Unit(FINISH, str(run_id), "embeddings.tasks.index_finish_task", [run_id], after_all=True),
    ]


def index_batch_leased(*, run_id: int, number: int, asset_ids: list[int], holder: str) -> int:
    """One batch under its lease; a batch done or held by a live worker is left alone. Sends the finish when it
    was the last batch."""
    with leases.lease_hold(kind=BATCH, unit=f"{run_id}:{number}", holder=holder) as held:
        count = 0 if held is None else index_batch(run_id=run_id, asset_ids=asset_ids, held=held)
    leases.leases_dispatch(job=job_key(run_id))
    return count


def index_finish_leased(*, run_id: int, holder: str) -> IndexRun:
    with leases.lease_hold(kind=FINISH, unit=str(run_id), holder=holder) as held:
        if held is None:
            return IndexRun.objects.get(pk=run_id)
        run = index_finish(run_id=run_id)
        leases.lease_complete(held)
    return run


def index_batch(*, run_id: int, asset_ids: list[int], held: leases.Held | None = None) -> int:
    """Index one batch of a run: what each of its works still needs, so a redelivered batch embeds nothing
    twice; its counts are added with its lease's end, once. Returns how many works it processed."""
    run = IndexRun.objects.select_related("collection").get(pk=run_id)
    encoder = get_encoder()
    space = encoder.space
    with_parts = run.kind != IndexRun.Kind.WORKS and settings.PROVENANT_INDEX_PARTS
    items = _work_items(
        Asset.objects.filter(collection=run.collection, id__in=asset_ids),
        set(index.stored_ids(space).tolist()),
        set(index.stored_ids(thumbnails.SPACE).tolist()),
        set(index.stored_ids(parts.parts_space(space)).tolist()) if with_parts else None,
        works=run.kind != IndexRun.Kind.PARTS,
    )
    buffers = _Buffers.of(space, with_parts)
    batch = IndexRun(pk=run.pk, errors=[])
    with ThreadPoolExecutor(max_workers=settings.PROVENANT_INDEX_WORKERS) as pool:
        buffers.add(_decode(pool, batch, items), encoder)
    written, parts_written = buffers.flush()
    if run.kind == IndexRun.Kind.PARTS:
        _publish(space)  # search uses the parts as they arrive
    with transaction.atomic():
        if held is not None:
            leases.lease_complete(held)
        locked = IndexRun.objects.select_for_update().get(pk=run.pk)
        locked.errors = (locked.errors + batch.errors)[:MAX_ERRORS_KEPT]
        locked.save(update_fields=["errors"])
        IndexRun.objects.filter(pk=run.pk).update(
            embedded=F("embedded") + written,
            parts_embedded=F("parts_embedded") + parts_written,
            hashed=F("hashed") + batch.hashed,
            failed=F("failed") + batch.failed,
            batches_done=F("batches_done") + 1,
        )
    return len(items)


def index_finish(*, run_id: int) -> IndexRun:
    """Publish every index of the run's space and mark it done (safe to run twice)."""
    run = IndexRun.objects.get(pk=run_id)
    space = get_encoder().space
    meta = _publish(space)
    if run.kind != IndexRun.Kind.PARTS:
        _build_keypoints(features_changed=True)
    seconds = (timezone.now() - run.started_at).total_seconds() if run.started_at else 0
    _finish(run, meta, run.total, seconds)
    return run


def index_fail(*, run_id: int, error: str) -> None:
    run = IndexRun.objects.get(pk=run_id)
    run.status = IndexRun.Status.FAILED
    run.errors = (run.errors + [{"asset_id": None, "reason": error[:500]}])[:MAX_ERRORS_KEPT]
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "errors", "finished_at"])
    leases.leases_job_fail(job=job_key(run_id), error=error)


def _record_failures(run: IndexRun, failed: list[_Decoded]) -> None:
    run.failed += len(failed)
    for d in failed:
        logger.warning("index: asset %s skipped: %s", d.item.asset_id, d.error)
        if len(run.errors) < MAX_ERRORS_KEPT:
            run.errors.append({"asset_id": d.item.asset_id, "reason": d.error})


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="index", disable=not enabled)


def index_publish(*, space_id: str | None = None) -> dict:
    """Re-publish the index of the current space from its shards (no-op when nothing changed)."""
    space = get_encoder().space
    if space_id and space_id != space.id:
        raise ApplicationError(f"space {space_id} is not the configured one ({space.id})")
    return _publish(space)
