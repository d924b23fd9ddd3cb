"""Every indexed work's keypoints in one memory-mapped pack, written with the keypoint index.

Verification reads the keypoints of about sixty candidates a query. Parsing each work's `.npz` cost about 0.8 ms, a
per-process cache holds only the popular ones, and each web process kept its own copy. The pack is two flat arrays
mapped read-only and a table of where each work's rows are: a work's keypoints are a slice, no parse, and every
process on the host shares one copy in the page cache. A work's file rewritten after the pack was written no longer
matches the modification time the pack recorded for it, so it is read from its file again
(geometry.asset_features).

Layout: PROVENANT_INDEX_DIR/features/<FEATURES_VERSION>/pack/<token>/{works.npy,points.bin,descriptors.bin}, and
pack/current.json naming the token, replaced last, so a reader never mixes two packs.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid

import numpy as np

from embeddings.search import geometry

# works.npy columns: asset id (ascending), the feature file's st_mtime_ns when packed, first row, row count
ID, WRITTEN, START, COUNT = range(4)

_lock = threading.Lock()
_loaded: dict[str, tuple] = {}


def _root():
    return geometry.features_dir() / "pack"


def write(asset_ids: list[int]) -> None:
    """Pack the cached features of those of `asset_ids` that have any, then publish the pack. Streams to disk:
    memory stays flat whatever the collection's size."""
    token = uuid.uuid4().hex
    folder = _root() / token
    folder.mkdir(parents=True)
    works, start = [], 0
    with open(folder / "points.bin", "wb") as points, open(folder / "descriptors.bin", "wb") as descriptors:
        for asset_id in sorted(set(asset_ids)):  # lookups bisect the ids
            written = geometry.features_written(asset_id)
            if written is None:
                continue
            features = geometry.asset_features(asset_id, "")
            works.append((asset_id, written, start, len(features.points)))
            points.write(np.ascontiguousarray(features.points, dtype=np.float32).tobytes())
            descriptors.write(np.ascontiguousarray(features.descriptors, dtype=np.uint8).tobytes())
            start += len(features.points)
    np.save(folder / "works.npy", np.array(works, dtype=np.int64).reshape(-1, 4))
    current = _root() / "current.json"
    part = current.with_name("current.json.part")
    part.write_text(json.dumps({"token": token}))
    os.replace(part, current)
    # a process that still maps an old pack keeps reading it (unlinked, not gone)
    for old in _root().iterdir():
        if old.is_dir() and old.name != token:
            shutil.rmtree(old, ignore_errors=True)


def packed() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(works, points, descriptors) of the published pack: works' rows are (asset id, file mtime, first row,
    row count), ascending by id."""
    return _load()


def lookup(asset_id: int, written: int) -> geometry.Features | None:
    """The work's packed features, or None when it is not packed or its file changed since."""
    pack = _load()
    if pack is None:
        return None
    works, points, descriptors = pack
    row = int(np.searchsorted(works[:, ID], asset_id))
    if row == len(works) or works[row, ID] != asset_id or works[row, WRITTEN] != written:
        return None
    start, count = int(works[row, START]), int(works[row, COUNT])
    return geometry.Features(points[start : start + count], descriptors[start : start + count])


def _load() -> tuple | None:
    current = _root() / "current.json"
    try:
        stat = current.stat()
        key = (str(current), stat.st_mtime_ns, stat.st_ino)
        with _lock:
            cached = _loaded.get("pack")
            if cached and cached[0] == key:
                return cached[1]
            folder = _root() / json.loads(current.read_text())["token"]
            works = np.load(folder / "works.npy")
            rows = int(works[-1, START] + works[-1, COUNT]) if len(works) else 0
            pack = (
                works,
                _mapped(folder / "points.bin", np.float32, rows, 2),
                _mapped(folder / "descriptors.bin", np.uint8, rows, 32),
            )
            _loaded["pack"] = (key, pack)
            return pack
    except (
        FileNotFoundError,
        ValueError,
        KeyError,
    ):  # none yet, or replaced while being opened: read the files
        return None


def _mapped(path, dtype, rows: int, width: int) -> np.ndarray:
    if rows == 0:  # numpy cannot map an empty file
        return np.zeros((0, width), dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(rows, width))


def forget_loaded() -> None:
    with _lock:
        _loaded.clear()
