"""Compact, vectorised membership indexes for opt-out keys.

- `KeySet`: exact string keys (normalised URL, domain, sha256, asset id). 64-bit hashes (DuckDB's `hash`, fast and
  multi-threaded) in a sorted numpy array behind a bitmap prefilter; every hash hit is verified by comparing the
  strings themselves, so a hash collision can never remove a row.
- `PhashIndex`: pHash within a Hamming radius by banding: four 16-bit bands, each a CSR table (offsets over the
  65,536 band values + a permutation, int32), so 1M registry hashes cost ~25 MB instead of several GB.
"""

from __future__ import annotations

import os
from itertools import combinations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_PAIR_TOP = (
    6  # the (band 0, band 1) pair table buckets by band 0 and band 1's top 6 bits: 4M int32 offsets, 16 MB
)
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


class PhashIndex:
    """64-bit pHashes (signed int64) searchable within `radius` bits.

    Band distances add up to the total distance. With 4 bands and radius <= 3, some band matches exactly
    (pigeonhole). At radius 4, either some band matches exactly or all four are at distance exactly 1; that
    second case is met in the middle on the 32-bit pair (band 0, band 1): the registry stores its 16 one-bit
    variants of band 0 in a CSR table over (variant, top 6 bits of band 1); a query probes its own band 0 with
    band 1's top bits as they are and with each of them flipped (a flip in the low 10 bits stays in the same
    bucket), and every candidate is verified on the whole hash.
    Beyond 4, some band lies within radius // 4 bits: slower, but still exact.
    """

    BANDS = 4
    BAND_BITS = 16

    def __init__(self, hashes: np.ndarray, radius: int):
        self.radius = radius
        self.hashes = np.asarray(hashes, dtype=np.int64).view(np.uint64)
        self._offsets, self._perms = [], []
        for band in range(self.BANDS):
            values = self._band(self.hashes, band)
            # 16-bit values: numpy sorts them by radix, 4x faster than 64-bit ones
            self._perms.append(np.argsort(values.astype(np.uint16), kind="stable").astype(np.int32))
            counts = np.bincount(values, minlength=1 << self.BAND_BITS)
            self._offsets.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        if radius == self.BANDS and len(self.hashes):
            self._build_pairs()

    def __len__(self) -> int:
        return len(self.hashes)

    def _band(self, hashes: np.ndarray, band: int) -> np.ndarray:
        return ((hashes >> np.uint64(band * self.BAND_BITS)) & np.uint64(0xFFFF)).astype(np.int64)

    def _build_pairs(self) -> None:
        b0, b1 = self._band(self.hashes, 0), self._band(self.hashes, 1)
        low = self.BAND_BITS - _PAIR_TOP
        buckets = np.concatenate(
            [((b0 ^ (1 << bit)) << _PAIR_TOP) | (b1 >> low) for bit in range(self.BAND_BITS)]
        )
        owners = np.tile(np.arange(len(self.hashes), dtype=np.int32), self.BAND_BITS)
        # any order within a bucket will do: _verify keeps the smallest registry index of the close candidates
        self._pair_owner = owners[np.argsort(buckets.astype(np.uint32))]
        counts = np.bincount(buckets, minlength=1 << (self.BAND_BITS + _PAIR_TOP))
        self._pair_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)

    def _probes(self) -> list[tuple[int, int]]:
        exact = [(band, 0) for band in range(self.BANDS)]
        if self.radius <= self.BANDS:
            return exact
        flips = [0]
        for r in range(1, self.radius // self.BANDS + 1):
            flips += [sum(1 << b for b in bits) for bits in combinations(range(self.BAND_BITS), r)]
        return [(band, mask) for band in range(self.BANDS) for mask in flips]

    def lookup(self, queries: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Per query, the smallest registry index within the radius, or -1."""
        q = np.asarray(queries, dtype=np.int64).view(np.uint64)
        best = np.full(len(q), np.iinfo(np.int64).max, dtype=np.int64)
        rows = np.flatnonzero(valid) if valid is not None else np.arange(len(q))
        if len(self.hashes) == 0 or len(rows) == 0:
            return np.full(len(q), -1, dtype=np.int64)
        qv = q[rows]
        for band, mask in self._probes():
            values = self._band(qv, band) ^ mask
            offsets, perm = self._offsets[band], self._perms[band]
            start = offsets[values]
            self._verify(rows, qv, start, offsets[values + 1] - start, perm, best)
        if self.radius == self.BANDS:
            self._lookup_pairs(rows, qv, best)
        return np.where(best == np.iinfo(np.int64).max, -1, best)

    def _lookup_pairs(self, rows, qv, best) -> None:
        base = (self._band(qv, 0) << _PAIR_TOP) | (self._band(qv, 1) >> (self.BAND_BITS - _PAIR_TOP))
        for flip in [0] + [1 << bit for bit in range(_PAIR_TOP)]:
            bucket = base ^ flip
            start = self._pair_offsets[bucket]
            self._verify(rows, qv, start, self._pair_offsets[bucket + 1] - start, self._pair_owner, best)

    def _verify(self, rows, qv, start, count, perm, best) -> None:
        # the k-th candidate of every bucket that has one, k = 0, 1, ...: buckets hold a few entries each, so a
        # few short passes (no (query, candidate) expansion with repeat/cumsum)
        live = np.flatnonzero(count)
        offset = 0
        while len(live):
            cand = perm[start[live] + offset].astype(np.int64)
            close = np.bitwise_count(qv[live] ^ self.hashes[cand]) <= self.radius
            if close.any():
                np.minimum.at(best, rows[live[close]], cand[close])
            offset += 1
            live = live[count[live] > offset]


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
