"""A binary FAISS index over every indexed work's ORB descriptors: candidates for geometric verification that
do not depend on the whole-image embedding.

A crop of a quarter of a drawing, or a copy pasted small into another picture, has a whole-image embedding far
from its original's, but most of its keypoints still match the original's keypoints. Each query descriptor votes
for the works owning its nearest descriptors; the works with most votes are verified with RANSAC. Stored as
PROVENANT_INDEX_DIR/features/<FEATURES_VERSION>/ivf.faiss + ivf.ids.npy (written to *.part, renamed), rebuilt by
indexing.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading

import numpy as np

from embeddings.search import feature_pack, geometry

PER_WORK = 300  # descriptors kept per work: enough to vote, bounded memory (32 bytes each)
MAX_HAMMING = 64  # of 256 bits: a descriptor further than this is not the same corner
ADD_CHUNK = 20_000  # works whose descriptors are added to the index at once while it is built
DESCRIPTORS_PER_LIST = 500  # a query descriptor scans nprobe lists of about this many
TRAIN_PER_LIST = 100  # descriptors of the k-means sample per list
MAX_LISTS = 4096  # training (k-means on TRAIN_PER_LIST x the lists) grows with the lists squared
NPROBE = 8  # lists a query descriptor scans


def _paths():
    root = geometry.features_dir()
    return root / "ivf.faiss", root / "ivf.ids.npy", root / "ivf.json"


def build(asset_ids: list[int]) -> dict:
    """(Re)build the feature pack and the descriptor index from the cached features of `asset_ids`, and publish
    both atomically. Index batches finish in several Celery workers at once: one build at a time, so that none
    removes the pack another is writing or publishes an older index last."""
    root = geometry.features_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(asset_ids)


def _build_locked(asset_ids: list[int]) -> dict:
    """Trains on a sample and adds the pack's descriptors a chunk of works at a time: besides the index itself,
    memory holds one chunk, whatever the collection's size."""
    import faiss

    feature_pack.write(asset_ids)
    packed = feature_pack.packed()
    if packed is None:
        return {"descriptors": 0}
    works, _, descriptors = packed
    kept = np.minimum(works[:, feature_pack.COUNT], PER_WORK)  # each work's first PER_WORK descriptors
    total = int(kept.sum())
    if total == 0:
        return {"descriptors": 0}
    first = np.concatenate([[0], np.cumsum(kept)])  # where each work's kept descriptors begin among all kept

    def pack_rows(positions: np.ndarray) -> np.ndarray:
        work = np.searchsorted(first, positions, side="right") - 1
        return works[work, feature_pack.START] + positions - first[work]

    nlist = list_count(total)
    index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(256), 256, nlist)
    sample = np.random.default_rng(0).choice(total, size=min(total, TRAIN_PER_LIST * nlist), replace=False)
    index.train(np.ascontiguousarray(descriptors[pack_rows(sample)]))
    index_path, ids_path, meta_path = _paths()
    owner = np.lib.format.open_memmap(str(ids_path) + ".part", mode="w+", dtype=np.int64, shape=(total,))
    for chunk in range(0, len(works), ADD_CHUNK):
        rows = pack_rows(np.arange(first[chunk], first[min(chunk + ADD_CHUNK, len(works))]))
        index.add(np.ascontiguousarray(descriptors[rows]))
        owner[first[chunk] : first[chunk] + len(rows)] = np.repeat(
            works[chunk : chunk + ADD_CHUNK, feature_pack.ID], kept[chunk : chunk + ADD_CHUNK]
        )
    owner.flush()
    del owner
    faiss.write_index_binary(index, str(index_path) + ".part")
    os.replace(str(ids_path) + ".part", ids_path)
    os.replace(str(index_path) + ".part", index_path)
    meta = {"descriptors": total, "works": len(works), "nlist": nlist}
    meta_path.write_text(json.dumps(meta))
    return meta


def list_count(descriptors: int) -> int:
    """Inverted lists for an index of `descriptors`: a power of two near one list per DESCRIPTORS_PER_LIST, so each
    query descriptor scans about nprobe x 500 descriptors whatever the size, up to MAX_LISTS. (A square-root rule
    gave the demo's 1.9M descriptors 1,024 lists: a search of 1,000 query descriptors scanned four times as much and
    took 57 ms against 30, for the same results.)"""
    power = round(np.log2(max(1.0, descriptors / DESCRIPTORS_PER_LIST)))
    return int(min(MAX_LISTS, max(16, 2**power)))


def is_built() -> bool:
    """The index and the pack it was built with are both there (a collection indexed before the pack existed
    gets it on its next index run)."""
    return _paths()[0].exists() and feature_pack.packed() is not None


_cache: dict[str, tuple] = {}
_lock = threading.Lock()


def _load():
    import faiss

    index_path, ids_path, _ = _paths()
    try:
        key = (str(index_path), index_path.stat().st_mtime_ns)
    except FileNotFoundError:
        return None
    with _lock:
        cached = _cache.get("orb")
        if cached and cached[0] == key:
            return cached[1], cached[2]
        index = faiss.read_index_binary(str(index_path))
        owner = np.load(ids_path, mmap_mode="r")  # read where votes land; shared by the processes of a host
        _cache["orb"] = (key, index, owner)
        return index, owner


def candidates(query: geometry.Features, *, limit: int, exclude: frozenset[int] = frozenset()) -> list[int]:
    """Works whose descriptors the query's descriptors hit most often (one vote per query descriptor per work)."""
    loaded = _load()
    if loaded is None or len(query.descriptors) == 0:
        return []
    index, owner = loaded
    index.nprobe = NPROBE
    distances, positions = index.search(np.ascontiguousarray(query.descriptors), 4)
    return most_voted(distances, owner, positions, limit=limit, exclude=exclude)


def most_voted(
    distances: np.ndarray, owner: np.ndarray, positions: np.ndarray, *, limit: int, exclude: frozenset[int]
) -> list[int]:
    """The works with most votes, 3 at least; ties by the query descriptor that first voted for them, then by
    id. A query descriptor votes once for each work among its near neighbours (numpy over all of them: a Python
    loop cost 10 ms a call)."""
    near = (positions >= 0) & (distances <= MAX_HAMMING)
    rows = np.nonzero(near)[0]
    # one ballot per query descriptor and work
    ballots = np.unique(np.stack([rows, owner[positions[near]]], axis=1), axis=0)
    voters = ballots[:, 1]
    if exclude:
        voters = voters[~np.isin(voters, np.fromiter(exclude, dtype=np.int64))]
    works, first, votes = np.unique(voters, return_index=True, return_counts=True)
    order = np.lexsort((first, -votes))
    return [int(works[i]) for i in order[:limit] if votes[i] >= 3]


def forget_loaded() -> None:
    with _lock:
        _cache.clear()
