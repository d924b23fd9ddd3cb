"""`KeySet`: a compact, vectorised membership index for exact opt-out keys (normalised URL, domain, sha256, asset
id). 64-bit hashes (DuckDB's `hash`, fast and multi-threaded) in a sorted numpy array behind a bitmap prefilter;
every hash hit is verified by comparing the strings themselves, so a hash collision can never remove a row.
pHashes within a radius: `core.phash_index.PhashIndex`, shared with the check API."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_BITMAP_BITS = 26  # 8 MB bitmap: at 1M keys ~1.5 % of the bits are set, so few lookups reach searchsorted
_connections: dict[tuple[int, int], object] = {}


def _duckdb():
    """One DuckDB connection per process and thread: a shard process forked from the CLI must never use its
    parent's connection, whose worker threads did not survive the fork."""
    import threading

    import duckdb

    owner = (os.getpid(), threading.get_ident())
    if owner not in _connections:
        _connections[owner] = duckdb.connect(config={"threads": 1})
    return _connections[owner]


def string_hashes(values: pa.Array) -> np.ndarray:
    """uint64 hash of every string (null hashed as '')."""
    con = _duckdb()
    table = pa.table({"k": pc.fill_null(pc.cast(values, pa.string()), "")})
    con.register("_keys", table)
    try:
        out = con.sql("SELECT hash(k) AS h FROM _keys").to_arrow_table()
    finally:
        con.unregister("_keys")
    return out.column(0).to_numpy().astype(np.uint64, copy=False)


class KeySet:
    """Registry keys of one kind; `lookup` gives, per query, the index of the matching registry row or -1:
    for a key listed more than once, its first row when the keys come sorted (as a snapshot's do)."""

    def __init__(self, keys: pa.Array):
        self.keys = pc.cast(keys, pa.string())
        first = _first_of_runs(self.keys)
        hashes = string_hashes(self.keys.take(pa.array(first)))
        # the hashes of distinct keys differ (a collision is caught by the string check), so an unstable sort
        # gives the same index every time
        order = np.argsort(hashes)
        self._order = first[order]
        self._sorted = hashes[order]
        # ~64 bits per key keeps false positives near 1.5 %; small kinds get small bitmaps
        self._bits = int(min(_BITMAP_BITS, max(16, (len(hashes) * 64).bit_length())))
        self._bitmap = _bitmap((hashes >> np.uint64(64 - self._bits)).astype(np.int64), self._bits)

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, queries: pa.Array) -> np.ndarray:
        result = np.full(len(queries), -1, dtype=np.int64)
        if len(self.keys) == 0 or len(queries) == 0:
            return result
        hashes = string_hashes(queries)
        top = (hashes >> np.uint64(64 - self._bits)).astype(np.int64)
        maybe = np.flatnonzero(self._bitmap[top >> 3] & (1 << (top & 7)).astype(np.uint8))
        if len(maybe) == 0:
            return result
        pos = np.searchsorted(self._sorted, hashes[maybe])
        pos = np.minimum(pos, len(self._sorted) - 1)
        hit = self._sorted[pos] == hashes[maybe]
        maybe, reg = maybe[hit], self._order[pos[hit]]
        # verify the strings: a 64-bit collision must not remove a work nobody opted out
        same = pc.equal(pc.take(self.keys, pa.array(reg)), pc.take(queries, pa.array(maybe)))
        same = np.asarray(pc.fill_null(same, False).to_numpy(zero_copy_only=False), dtype=bool)
        result[maybe[same]] = reg[same]
        return result


def _first_of_runs(keys: pa.Array) -> np.ndarray:
    """Row numbers of the first key of every run of equal keys."""
    if len(keys) < 2:
        return np.arange(len(keys), dtype=np.int64)
    differs = pc.fill_null(pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1)), True)
    return np.concatenate([[0], np.flatnonzero(differs.to_numpy(zero_copy_only=False)) + 1]).astype(np.int64)


def _bitmap(slots: np.ndarray, bits: int = _BITMAP_BITS) -> np.ndarray:
    """A bit per slot (a Bloom filter with one hash): set bits for the given slot numbers."""
    bitmap = np.zeros(1 << (bits - 3), dtype=np.uint8)
    for bit in range(8):
        # all writes in one pass set the same bit, so repeated indexes are harmless
        chosen = slots[(slots & 7) == bit] >> 3
        bitmap[chosen] |= np.uint8(1 << bit)
    return bitmap
