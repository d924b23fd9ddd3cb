"""Indexing: hashes where missing, ORB keypoints, thumbnails and embeddings in shards, then published FAISS
indexes (the embedding space's and the thumbnail space's)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.utils import timezone

from core.exceptions import ApplicationError
from embeddings import geometry, index, keypoints, parts, thumbnails
from embeddings.encoder import get_encoder
from embeddings.models import IndexRun
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
    collection: Collection, done: set[int], thumbnailed: set[int], parted: set[int] | None
) -> list[_Item]:
    """What each asset of the collection still needs; `parted` is None when part embeddings are switched off."""
    rows = Asset.objects.filter(collection=collection).exclude(local_path="").order_by("id")
    items = []
    for asset_id, local_path, phash, pdq in rows.values_list("id", "local_path", "phash", "pdq"):
        item = _Item(
            asset_id,
            local_path,
            needs_hash=phash is None or not pdq,
            needs_embedding=asset_id not in done,
            needs_features=settings.PROVENANT_INDEX_ORB and not geometry.has_features(asset_id),
            needs_thumbnail=asset_id not in thumbnailed,
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


def index_collection(
    *, collection_name: str, batch_size: int | None = None, workers: int | None = None, progress: bool = False
) -> IndexRun:
    """Index every asset of a collection not yet in the current embedding space, then publish the index.

    Resumable: each finished shard is on disk, so a crashed or interrupted run resumes where it stopped, and a
    second run over an indexed collection embeds nothing and leaves the published index untouched.
    """
    collection = Collection.objects.filter(name=collection_name).first()
    if collection is None:
        raise ApplicationError(f"no collection named {collection_name!r}", status_code=404)
    encoder = get_encoder()
    space = encoder.space
    run = IndexRun.objects.create(
        collection=collection, space_id=space.id, status=IndexRun.Status.RUNNING, started_at=timezone.now()
    )
    try:
        _index_items(
            run,
            collection,
            encoder,
            batch_size or settings.PROVENANT_INDEX_BATCH,
            workers or settings.PROVENANT_INDEX_WORKERS,
            progress,
        )
    except Exception as exc:
        run.status = IndexRun.Status.FAILED
        run.errors = (run.errors + [{"asset_id": None, "reason": f"run failed: {exc}"}])[:MAX_ERRORS_KEPT]
        run.finished_at = timezone.now()
        run.save()
        raise
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


def _index_items(
    run: IndexRun, collection: Collection, encoder, batch_size: int, workers: int, progress: bool
):
    space = encoder.space
    done = set(index.stored_ids(space).tolist())
    part_space = parts.parts_space(space) if settings.PROVENANT_INDEX_PARTS else None
    parted = set(index.stored_ids(part_space).tolist()) if part_space else None
    items = _work_items(collection, done, set(index.stored_ids(thumbnails.SPACE).tolist()), parted)
    run.total = Asset.objects.filter(collection=collection).count()
    run.skipped = run.total - sum(1 for i in items if i.needs_embedding)
    started = time.perf_counter()
    embedded, thumbnailed = _ShardBuffer(space), _ShardBuffer(thumbnails.SPACE)
    parted_buffer = _ShardBuffer(part_space) if part_space else None
    shard_size = settings.PROVENANT_INDEX_SHARD_SIZE
    bar = _progress_bar(len(items), progress)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(items), batch_size):
            decoded = list(pool.map(_prepare, items[start : start + batch_size]))
            ok = [d for d in decoded if not d.error]
            _record_failures(run, [d for d in decoded if d.error])
            run.hashed += _save_hashes(ok)
            to_embed = [d for d in ok if d.item.needs_embedding]
            if to_embed:
                embedded.add(
                    [d.item.asset_id for d in to_embed], encoder.encode_images([d.image for d in to_embed])
                )
            with_thumbnail = [d for d in ok if d.thumbnail is not None]
            if with_thumbnail:
                thumbnailed.add(
                    [d.item.asset_id for d in with_thumbnail], np.stack([d.thumbnail for d in with_thumbnail])
                )
            with_parts = [d for d in ok if d.parts]
            parts_written = 0
            if with_parts:
                parted_buffer.add(
                    [d.item.asset_id for d in with_parts for _ in d.parts],
                    encoder.encode_images([part for d in with_parts for part in d.parts]),
                )
                parts_written = parted_buffer.flush(minimum=shard_size * parts.PER_WORK) // parts.PER_WORK
            thumbnailed.flush(minimum=shard_size)
            written = embedded.flush(minimum=shard_size)
            if written or parts_written:  # progress in the DB each time a shard is safely on disk
                run.embedded += written
                run.parts_embedded += parts_written
                run.save(
                    update_fields=[
                        "embedded",
                        "parts_embedded",
                        "hashed",
                        "failed",
                        "errors",
                        "total",
                        "skipped",
                    ]
                )
            bar.update(len(decoded))
    bar.close()
    thumbnailed.flush()
    if parted_buffer:
        run.parts_embedded += parted_buffer.flush() // parts.PER_WORK
    run.embedded += embedded.flush()
    meta = _publish(space)
    if any(i.needs_features for i in items) or not keypoints.is_built():
        keypoints.build(
            list(Asset.objects.exclude(local_path="").order_by("id").values_list("id", flat=True))
        )
    elapsed = time.perf_counter() - started
    run.index_kind, run.index_total = meta["kind"], meta["ntotal"]
    run.images_per_second = round(len(items) / elapsed, 2) if items and elapsed > 0 else None
    run.status, run.finished_at = IndexRun.Status.DONE, timezone.now()
    run.save()


def _publish(space) -> dict:
    """Publish the thumbnail index, the part index and the embedding space's; returns the embedding index's
    metadata."""
    index.publish_index(thumbnails.SPACE, exact_max=settings.PROVENANT_INDEX_EXACT_MAX)
    if settings.PROVENANT_INDEX_PARTS and index.shard_paths(parts.parts_space(space)):
        index.publish_index(parts.parts_space(space), exact_max=settings.PROVENANT_INDEX_EXACT_MAX)
    return index.publish_index(space, exact_max=settings.PROVENANT_INDEX_EXACT_MAX)


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
