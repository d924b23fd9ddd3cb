"""The arrays the cascade reads besides the FAISS shards, cached per process: every asset's hashes, and the indexed
vectors by asset id. Each reloads itself when its source changes; `stores_reset()` drops them and the loaded shards
(tests that rebuild the collection or the index under the same key call it)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db.models import Count, Max

from embeddings.encoders.factory import get_encoder
from embeddings.search import index
from provenance import hashing
from provenance.models import Asset

# --- perceptual hash table --------------------------------------------------------------------------------------


@dataclass
class HashTable:
    key: tuple
    ids: np.ndarray
    phash: np.ndarray  # int64; rows without a pHash are masked by has_phash
    has_phash: np.ndarray
    pdq: np.ndarray  # (n, 32) uint8
    pdq_ok: np.ndarray  # PDQ present and of usable quality


_hash_table: HashTable | None = None
_hash_lock = threading.Lock()
_pinned: ContextVar[HashTable | None] = ContextVar("pinned_hash_table", default=None)


@contextmanager
def one_hash_table() -> Iterator[HashTable]:
    """Every hash_table() inside reads the table checked once on entry: a search asks for it for the query and for
    each picture inside it, and the freshness check scans the assets table (25 ms at 100k works on PostgreSQL)."""
    table = hash_table()
    token = _pinned.set(table)
    try:
        yield table
    finally:
        _pinned.reset(token)


def hash_table() -> HashTable:
    """All assets' hashes as numpy arrays, reloaded when assets are added or changed (one aggregate query)."""
    global _hash_table
    pinned = _pinned.get()
    if pinned is not None:
        return pinned
    stats = Asset.objects.aggregate(n=Count("id"), last=Max("id"), changed=Max("updated_at"))
    key = (stats["n"], stats["last"], stats["changed"])
    with _hash_lock:
        if _hash_table is not None and _hash_table.key == key:
            return _hash_table
        rows = list(Asset.objects.order_by("id").values_list("id", "phash", "pdq", "pdq_quality"))
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        phash = np.array([r[1] if r[1] is not None else 0 for r in rows], dtype=np.int64)
        has_phash = np.array([r[1] is not None for r in rows], dtype=bool)
        pdq = hashing.pdq_to_array([r[2] for r in rows])
        min_quality = settings.PROVENANT_PDQ_MIN_QUALITY
        pdq_ok = np.array([bool(r[2]) and (r[3] or 0) >= min_quality for r in rows], dtype=bool)
        _hash_table = HashTable(key, ids, phash, has_phash, pdq, pdq_ok)
        return _hash_table


# --- near-duplicate clusters ------------------------------------------------------------------------------------


class VectorStore:
    """Indexed vectors by asset id, memory-mapped from the shards (float16), for cluster checks."""

    def __init__(self, space) -> None:
        shards = index.shard_paths(space)
        loaded = [index.load_shard(s) for s in shards]
        self.key = [s.name for s in shards]
        ids = np.concatenate([i for i, _ in loaded]) if loaded else np.zeros(0, np.int64)
        self._arrays = [v for _, v in loaded]
        offsets = np.cumsum([0] + [len(i) for i, _ in loaded])
        shard_of = (
            np.repeat(np.arange(len(loaded)), [len(i) for i, _ in loaded]) if loaded else np.zeros(0, int)
        )
        # the last occurrence of an id wins (a re-embedded work)
        order = np.lexsort((np.arange(len(ids)), ids))
        self._ids, self._shard, self._row = (
            ids[order],
            shard_of[order],
            (np.arange(len(ids)) - offsets[shard_of])[order] if len(ids) else np.zeros(0, int),
        )

    def get(self, asset_ids: list[int]) -> dict[int, np.ndarray]:
        out = {}
        for asset_id in asset_ids:
            pos = np.searchsorted(self._ids, asset_id, side="right") - 1
            if pos >= 0 and self._ids[pos] == asset_id:
                out[asset_id] = np.asarray(self._arrays[self._shard[pos]][self._row[pos]], dtype=np.float32)
        return out


_stores: dict[str, VectorStore] = {}


def vector_store() -> VectorStore:
    space = get_encoder().space
    names = [s.name for s in index.shard_paths(space)]
    store = _stores.get(space.id)
    if store is None or store.key != names:
        store = _stores[space.id] = VectorStore(space)
    return store


def stores_reset() -> None:
    """Forget every cache the search keeps (the hash table, the vector stores, the loaded FAISS shards): the next
    read loads them again."""
    global _hash_table
    with _hash_lock:
        _hash_table = None
    _stores.clear()
    index.forget_loaded()
