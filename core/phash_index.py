"""64-bit pHashes searchable within a Hamming radius: the one index behind the check API, the opt-out gate and
the manifest filter, so that a work the check calls a near copy is the work a manifest removes. No Django.

Band distances add up to the total distance. With 4 bands of 16 bits and radius <= 3, some band matches exactly
(pigeonhole). At radius 4, either some band matches exactly or all four are at distance exactly 1; that second
case is met in the middle on the 32-bit pair (band 0, band 1): the index stores the 16 one-bit variants of every
hash's band 0 in a CSR table over (variant, top 6 bits of band 1); a query probes its own band 0 with band 1's top
bits as they are and with each of them flipped (a flip in the low 10 bits stays in the same bucket). Beyond 4,
some band lies within radius // 4 bits: slower, but still exact. Every candidate is verified on the whole hash.
Each band is a CSR table (offsets over the 65,536 band values + a permutation, int32): 1M hashes cost ~25 MB.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

_BANDS = 4
_BAND_BITS = 16
# the (band 0, band 1) pair table buckets by band 0 and band 1's top 6 bits: 4M int32 offsets, 16 MB
_PAIR_TOP = 6
_NONE = np.iinfo(np.int64).max
# nearest(): a candidate's score is its distance above its row number, so the minimum is the nearest row and,
# among equally near ones, the first
_DISTANCE_SHIFT = np.int64(40)


class PhashIndex:
    """`hashes` are signed int64 (the bits of the unsigned pHash). Answers name rows of `hashes`."""

    def __init__(self, hashes: np.ndarray, radius: int):
        self.radius = radius
        self.hashes = np.ascontiguousarray(hashes, dtype=np.int64).view(np.uint64)
        self._offsets, self._perms = [], []
        for band in range(_BANDS):
            values = _band(self.hashes, band)
            # 16-bit values: numpy sorts them by radix, 4x faster than 64-bit ones
            self._perms.append(np.argsort(values.astype(np.uint16), kind="stable").astype(np.int32))
            counts = np.bincount(values, minlength=1 << _BAND_BITS)
            self._offsets.append(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        if radius == _BANDS and len(self.hashes):
            self._build_pairs()

    def __len__(self) -> int:
        return len(self.hashes)

    def lookup(self, queries: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Per query, the first row within the radius, or -1 (and -1 where `valid` is False)."""
        best = self._search(queries, valid, nearest=False)
        return np.where(best == _NONE, -1, best)

    def nearest(self, queries: np.ndarray, alive: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(row, distance) per query of the nearest hash within the radius, the first row of equally near ones;
        (-1, -1) where none is. `alive` (one bool per row) leaves out the rows it marks False, so a caller can
        retire rows without rebuilding the index."""
        best = self._search(queries, None, nearest=True, alive=alive)
        found = best != _NONE
        rows = np.where(found, best & ((np.int64(1) << _DISTANCE_SHIFT) - 1), -1)
        return rows, np.where(found, best >> _DISTANCE_SHIFT, -1)

    def _build_pairs(self) -> None:
        b0, b1 = _band(self.hashes, 0), _band(self.hashes, 1)
        low = _BAND_BITS - _PAIR_TOP
        buckets = np.concatenate(
            [((b0 ^ (1 << bit)) << _PAIR_TOP) | (b1 >> low) for bit in range(_BAND_BITS)]
        )
        owners = np.tile(np.arange(len(self.hashes), dtype=np.int32), _BAND_BITS)
        # any order within a bucket will do: candidates are reduced to the best row whatever their order
        self._pair_owner = owners[np.argsort(buckets.astype(np.uint32))]
        counts = np.bincount(buckets, minlength=1 << (_BAND_BITS + _PAIR_TOP))
        self._pair_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)

    def _probes(self) -> list[tuple[int, int]]:
        exact = [(band, 0) for band in range(_BANDS)]
        if self.radius <= _BANDS:
            return exact
        flips = [0]
        for r in range(1, self.radius // _BANDS + 1):
            flips += [sum(1 << b for b in bits) for bits in combinations(range(_BAND_BITS), r)]
        return [(band, mask) for band in range(_BANDS) for mask in flips]

    def _search(
        self, queries: np.ndarray, valid: np.ndarray | None, *, nearest: bool, alive: np.ndarray | None = None
    ) -> np.ndarray:
        q = np.ascontiguousarray(queries, dtype=np.int64).view(np.uint64)
        best = np.full(len(q), _NONE, dtype=np.int64)
        rows = np.flatnonzero(valid) if valid is not None else np.arange(len(q))
        if len(self.hashes) == 0 or len(rows) == 0:
            return best
        qv = q[rows]
        for band, mask in self._probes():
            values = _band(qv, band) ^ mask
            offsets = self._offsets[band]
            start = offsets[values]
            self._verify(
                rows, qv, start, offsets[values + 1] - start, self._perms[band], best, nearest, alive
            )
        if self.radius == _BANDS:
            base = (_band(qv, 0) << _PAIR_TOP) | (_band(qv, 1) >> (_BAND_BITS - _PAIR_TOP))
            for flip in [0] + [1 << bit for bit in range(_PAIR_TOP)]:
                bucket = base ^ flip
                start = self._pair_offsets[bucket]
                count = self._pair_offsets[bucket + 1] - start
                self._verify(rows, qv, start, count, self._pair_owner, best, nearest, alive)
        return best

    def _verify(self, rows, qv, start, count, perm, best, nearest: bool, alive) -> None:
        # the k-th candidate of every bucket that has one, k = 0, 1, ...: buckets hold a few entries each, so a
        # few short passes (no (query, candidate) expansion with repeat/cumsum)
        live = np.flatnonzero(count)
        offset = 0
        while len(live):
            cand = perm[start[live] + offset].astype(np.int64)
            distance = np.bitwise_count(qv[live] ^ self.hashes[cand]).astype(np.int64)
            close = distance <= self.radius
            if alive is not None:
                close &= alive[cand]
            if close.any():
                score = cand[close]
                if nearest:
                    score = score | (distance[close] << _DISTANCE_SHIFT)
                np.minimum.at(best, rows[live[close]], score)
            offset += 1
            live = live[count[live] > offset]


def _band(hashes: np.ndarray, band: int) -> np.ndarray:
    return ((hashes >> np.uint64(band * _BAND_BITS)) & np.uint64(0xFFFF)).astype(np.int64)
