"""Vectors on disk and the FAISS index over them, per embedding space.

Layout under settings.PROVENANT_INDEX_DIR/<space id>/:
  space.json                     the space (model, pretrained, dim) every file here belongs to
  shard-00000.npy / .ids.npy     L2-normalised float16 vectors and their asset ids, written once, never changed
  index.faiss + index.json       the published FAISS index and what it covers (written to *.part, then renamed)

Shards are the source of truth; the index is derived and can be rebuilt from them at any time. Queries read the
index memory-mapped read-only, so several worker processes share the page cache instead of each holding a copy.
Excluded ids (removed or opted-out works) are filtered at query time with a FAISS id selector: no rebuild.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from embeddings.encoders.space import EmbeddingSpace

INDEX_FILE = "index.faiss"
INDEX_META = "index.json"


def index_root() -> Path:
    from django.conf import settings

    return Path(settings.PROVENANT_INDEX_DIR)


def space_dir(space: EmbeddingSpace) -> Path:
    path = index_root() / space.id
    path.mkdir(parents=True, exist_ok=True)
    meta = path / "space.json"
    if not meta.exists():
        _atomic_write_text(
            meta,
            json.dumps(
                {"id": space.id, "model": space.model, "pretrained": space.pretrained, "dim": space.dim}
            ),
        )
    return path


@contextmanager
def space_lock(space: EmbeddingSpace) -> Iterator[None]:
    """Held while a shard is numbered and written, or the index published: index batches run in several Celery
    workers at once, and two of them must neither take one shard number nor publish an older shard list last."""
    with open(space_dir(space) / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write_text(path: Path, text: str) -> None:
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    os.replace(part, path)


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as handle:
        np.save(handle, array)
    os.replace(part, path)


def shard_paths(space: EmbeddingSpace) -> list[Path]:
    return sorted(p for p in space_dir(space).glob("shard-*.npy") if not p.name.endswith(".ids.npy"))


def _ids_path(shard: Path) -> Path:
    return shard.with_name(shard.name.removesuffix(".npy") + ".ids.npy")


def write_shard(space: EmbeddingSpace, ids: np.ndarray, vectors: np.ndarray) -> Path:
    """Append one shard. Ids first, vectors last: a shard counts only once its vector file exists."""
    if len(ids) != len(vectors) or vectors.shape[1] != space.dim:
        raise ValueError(f"shard shape mismatch: {len(ids)} ids, vectors {vectors.shape}, dim {space.dim}")
    vectors = np.asarray(vectors, dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    with space_lock(space):
        existing = shard_paths(space)
        number = int(existing[-1].name[6:11]) + 1 if existing else 0
        shard = space_dir(space) / f"shard-{number:05d}.npy"
        _atomic_save_npy(_ids_path(shard), np.asarray(ids, dtype=np.int64))
        _atomic_save_npy(shard, vectors.astype(np.float16))
    return shard


def load_shard(shard: Path) -> tuple[np.ndarray, np.ndarray]:
    return np.load(_ids_path(shard)), np.load(shard, mmap_mode="r")


def stored_ids(space: EmbeddingSpace) -> np.ndarray:
    parts = [np.load(_ids_path(shard)) for shard in shard_paths(space)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def load_vectors(space: EmbeddingSpace, shards: list[Path] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64, vectors float32) of the given shards (all by default). An id's vectors all come from the
    latest shard holding it: a re-embedded work replaces its old vectors, and a work owning several vectors
    (embeddings.search.parts) keeps all of them."""
    shards = shard_paths(space) if shards is None else shards
    if not shards:
        return np.zeros(0, dtype=np.int64), np.zeros((0, space.dim), dtype=np.float32)
    loaded = [load_shard(shard) for shard in shards]
    ids = np.concatenate([i for i, _ in loaded])
    vectors = np.concatenate([np.asarray(v, dtype=np.float32) for _, v in loaded])
    shard_of = np.concatenate([np.full(len(i), n) for n, (i, _) in enumerate(loaded)])
    order = np.lexsort((shard_of, ids))  # by id, then shard: an id's latest shard comes last
    latest = np.empty_like(shard_of)
    starts = np.flatnonzero(np.r_[True, ids[order][1:] != ids[order][:-1]])
    ends = np.r_[starts[1:], len(order)]
    latest[order] = np.repeat(shard_of[order][ends - 1], ends - starts)
    keep = np.flatnonzero(shard_of == latest)
    return ids[keep], vectors[keep]


# --- building and publishing ----------------------------------------------------------------------------------


def _factory(dim: int, count: int, exact_max: int) -> tuple[str, str]:
    """Exact inner product while a brute-force scan stays interactive; IVF beyond (recall in the benchmark)."""
    if count <= exact_max:
        return "flat", "IDMap,Flat"
    nlist = int(min(65536, max(256, 4 * np.sqrt(count))))
    nlist = 1 << int(np.log2(nlist))  # a power of two: 1M vectors -> 4096 lists
    return "ivf", f"IVF{nlist},Flat"


def build_index(ids: np.ndarray, vectors: np.ndarray, *, exact_max: int, train_max: int = 200_000):
    import faiss

    kind, factory = _factory(vectors.shape[1], len(ids), exact_max)
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if kind == "ivf":
        rng = np.random.default_rng(0)
        # k-means wants ~40 points per list: 200k suffice for 4096 lists (1M vectors), not for 8192 (part vectors)
        size = min(len(vectors), max(train_max, 40 * index.nlist))  # type: ignore[attr-defined]  # faiss's SWIG types: an IVF index
        sample = vectors[rng.choice(len(vectors), size=size, replace=False)]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return kind, index


def read_meta(space: EmbeddingSpace) -> dict | None:
    path = space_dir(space) / INDEX_META
    return json.loads(path.read_text()) if path.exists() else None


def publish_index(space: EmbeddingSpace, *, exact_max: int) -> dict:
    """(Re)build the index from the shards and publish it atomically: temp name, then rename.

    An IVF index keeps its trained quantizer and only takes the shards it has not seen (incremental add); an
    exact index is rebuilt from the shards, which costs no more than reading them.
    """
    with space_lock(space):
        return _publish_locked(space, exact_max)


def _publish_locked(space: EmbeddingSpace, exact_max: int) -> dict:
    import faiss

    directory = space_dir(space)
    shards = shard_paths(space)
    meta = read_meta(space)
    names = [s.name for s in shards]
    if meta and meta["shards"] == names and (directory / INDEX_FILE).exists():
        return meta  # nothing new: a second run changes nothing
    started = time.perf_counter()
    if (
        meta
        and meta["kind"] == "ivf"
        and set(meta["shards"]) <= set(names)
        and (directory / INDEX_FILE).exists()
    ):
        index = faiss.read_index(str(directory / INDEX_FILE))
        new_ids, new_vectors = load_vectors(space, [s for s in shards if s.name not in meta["shards"]])
        index.remove_ids(faiss.IDSelectorBatch(new_ids))  # re-embedded ids replace their old vectors
        index.add_with_ids(np.ascontiguousarray(new_vectors), new_ids)
        kind = "ivf"
    else:
        ids, vectors = load_vectors(space, shards)
        kind, index = build_index(ids, vectors, exact_max=exact_max)
    part = directory / (INDEX_FILE + ".part")
    faiss.write_index(index, str(part))
    os.replace(part, directory / INDEX_FILE)
    meta = {
        "space": space.id,
        "kind": kind,
        "ntotal": int(index.ntotal),
        "shards": names,
        "built_seconds": round(time.perf_counter() - started, 3),
        "published_at": time.time(),
    }
    _atomic_write_text(directory / INDEX_META, json.dumps(meta))
    return meta


# --- querying ---------------------------------------------------------------------------------------------------


@dataclass
class LoadedIndex:
    index: Any  # a faiss index: faiss's SWIG wrappers carry no usable types
    kind: str
    mtime_ns: int


_loaded: dict[str, LoadedIndex] = {}
_lock = threading.Lock()


def load_index(space: EmbeddingSpace) -> LoadedIndex | None:
    """The published index, memory-mapped read-only; reloaded when a newer one has been published."""
    import faiss

    path = space_dir(space) / INDEX_FILE
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    with _lock:
        cached = _loaded.get(space.id)
        if cached and cached.mtime_ns == mtime_ns:
            return cached
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        _prefer_blas_for_query_batches(faiss)
        meta = read_meta(space) or {"kind": "flat"}
        loaded = LoadedIndex(index=index, kind=meta["kind"], mtime_ns=mtime_ns)
        _loaded[space.id] = loaded
        return loaded


def search_vectors(
    space: EmbeddingSpace,
    queries: np.ndarray,
    k: int,
    *,
    exclude_ids: set[int] | frozenset = frozenset(),
    nprobe: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the k nearest indexed vectors per query row; ids -1 where fewer exist."""
    import faiss

    loaded = load_index(space)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if loaded is None or loaded.index.ntotal == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    selector = None
    if exclude_ids:
        # kept alive until the search returns: FAISS holds raw pointers to both selectors
        batch = faiss.IDSelectorBatch(np.fromiter(exclude_ids, dtype=np.int64))
        selector = faiss.IDSelectorNot(batch)
    # faiss's SWIG constructors take the parameters as keywords, which its generated signatures do not declare
    params: Any
    if loaded.kind == "ivf":
        params = (
            faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)  # type: ignore[call-arg]
            if selector
            else faiss.SearchParametersIVF(nprobe=nprobe)  # type: ignore[call-arg]
        )
    else:
        params = faiss.SearchParameters(sel=selector) if selector else None  # type: ignore[call-arg]
    k = min(k, loaded.index.ntotal)
    scores, ids = loaded.index.search(queries, k, params=params)
    return scores, ids


# Below this many multiply-adds per thread (queries x dimension) a flat index scans with its own SIMD loop, above
# it with one BLAS matrix product. FAISS 1.15 raised the crossover to 128,000 regardless of threads, tuned for
# many-core servers; with 2 threads the loop is the slower from about 800 per thread (faiss PR #5109's figure):
# 16 thumbnail views against 100k works took 112 ms by the loop and 28 ms by BLAS, the same neighbours.
FLAT_BLAS_CROSSOVER_PER_THREAD = 800


def _prefer_blas_for_query_batches(faiss) -> None:
    faiss.cvar.distance_compute_blas_threshold = FLAT_BLAS_CROSSOVER_PER_THREAD * faiss.omp_get_max_threads()


def forget_loaded() -> None:
    """Drop cached indexes (tests, and after deleting an index directory)."""
    with _lock:
        _loaded.clear()
