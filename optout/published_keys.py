"""The published keys a process holds for the check (optout.checking): the active pHashes in an index searchable
within a Hamming radius, and the active exact keys (sha256, URL, domain) while there are few enough of them.

They follow the registry clock (optout.models.RegistryClock), read on every call, so a check never answers from a
stale registry. When the clock has moved, the change log (RegistryChange) names the opt-outs that moved it: only
their keys are read again, and the pHash index retires their old rows and searches their new ones beside it, so an
approval costs a few small queries instead of a reload of every key. Anything the log cannot vouch for (a gap
left by a rolled-back transaction, a process further behind than the log keeps, a change not pinned on opt-outs,
changed settings) reloads everything.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np
from django.conf import settings
from django.db import connection

from core.phash_index import PhashIndex
from optout.models import OptOutKey, RegistryChange, RegistryClock

EXACT_KINDS = (OptOutKey.Kind.SHA256, OptOutKey.Kind.URL, OptOutKey.Kind.DOMAIN)
Exact = dict[str, dict[str, int]]  # {kind: {key: lowest active opt-out id}}

# pHashes activated since the index was built are searched by brute force; the index is rebuilt past this many
# of them, or past this many retired rows or a quarter of the index retired, whichever is more
_ADDED_MAX = 256
# more log rows than this since the last sync: one full reload reads less than the per-opt-out queries would
_LOG_MAX = 500
_ID_BITS = 40  # a (distance, opt-out id) pair packed in one int64 orders by distance, then by id


@dataclass(frozen=True)
class ActivePhashes:
    """The active pHashes: an index over rows in opt-out id order (so that of equally near matches the lowest
    opt-out id answers), some of its rows retired, and the pHashes activated since it was built."""

    index: PhashIndex
    optout_ids: np.ndarray  # int64, one per indexed row
    alive: np.ndarray  # bool, one per indexed row
    added_hashes: np.ndarray  # int64
    added_ids: np.ndarray  # int64

    @classmethod
    def build(cls, hashes: np.ndarray, optout_ids: np.ndarray, radius: int) -> ActivePhashes:
        order = np.argsort(optout_ids, kind="stable")
        empty = np.zeros(0, dtype=np.int64)
        return cls(
            PhashIndex(hashes[order], radius), optout_ids[order], np.ones(len(order), bool), empty, empty
        )

    def match(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(optout id or -1, distance or -1) per query: the nearest active pHash within the radius."""
        rows, distances = self.index.nearest(queries, None if self.alive.all() else self.alive)
        ids = np.full(len(rows), -1, dtype=np.int64)
        ids[rows >= 0] = self.optout_ids[rows[rows >= 0]]
        if len(self.added_hashes):
            ids, distances = self._nearer_added(np.asarray(queries, dtype=np.int64), ids, distances)
        return ids, distances

    def _nearer_added(self, queries: np.ndarray, ids: np.ndarray, distances: np.ndarray):
        none = np.iinfo(np.int64).max
        best = np.where(ids >= 0, (distances << _ID_BITS) | ids, none)
        for start in range(0, len(queries), 4096):
            chunk = queries[start : start + 4096, None] ^ self.added_hashes[None, :]
            d = np.bitwise_count(chunk.view(np.uint64)).astype(np.int64)
            score = np.where(d <= self.index.radius, (d << _ID_BITS) | self.added_ids[None, :], none).min(1)
            np.minimum(best[start : start + 4096], score, out=best[start : start + 4096])
        found = best != none
        return np.where(found, best & ((1 << _ID_BITS) - 1), -1), np.where(found, best >> _ID_BITS, -1)

    def replaced(self, optout_ids: np.ndarray, hashes: np.ndarray, owners: np.ndarray) -> ActivePhashes:
        """These opt-outs' rows retired and their active pHashes now (`hashes`, `owners`) added; a new object,
        so a check running in another thread keeps the one it started with."""
        alive = self.alive & ~np.isin(self.optout_ids, optout_ids)
        kept = ~np.isin(self.added_ids, optout_ids)
        added_hashes = np.concatenate([self.added_hashes[kept], hashes.astype(np.int64)])
        added_ids = np.concatenate([self.added_ids[kept], owners.astype(np.int64)])
        if len(added_hashes) > _ADDED_MAX or (~alive).sum() > max(_ADDED_MAX, len(alive) // 4):
            indexed = self.index.hashes.view(np.int64)
            return ActivePhashes.build(
                np.concatenate([indexed[alive], added_hashes]),
                np.concatenate([self.optout_ids[alive], added_ids]),
                self.index.radius,
            )
        return replace(self, alive=alive, added_hashes=added_hashes, added_ids=added_ids)


@dataclass(frozen=True)
class Held:
    """What a process holds, and the point of the registry it reflects."""

    version: int
    change_id: int  # the newest log row the keys include
    radius: int
    limit: int
    phashes: ActivePhashes
    exact: Exact | None  # None: more keys than OPTOUT_CHECK_MEMORY_KEYS, ask the database


_lock = threading.Lock()
_held: Held | None = None


def registry_clock() -> tuple[int, int]:
    """(clock version, newest change log id), read in one statement: one snapshot of both. The clock moves with
    every change to the published keys (activation, withdrawal, revocation, gate narrowing, deletes:
    optout.services.publishing, optout.receivers); a request waiting for review publishes nothing and moves
    nothing."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COALESCE(MAX(version), 0) FROM {RegistryClock._meta.db_table} WHERE id = 1),"
            f" (SELECT COALESCE(MAX(id), 0) FROM {RegistryChange._meta.db_table})"
        )
        version, newest = cursor.fetchone()
        return int(version), int(newest)


def published_keys() -> Held:
    """The keys as the registry publishes them now: synced with the clock on every call."""
    global _held
    (version, newest), radius = registry_clock(), settings.OPTOUT_CHECK_PHASH_RADIUS
    limit = settings.OPTOUT_CHECK_MEMORY_KEYS
    with _lock:
        held = _held
        if held is not None and (held.version, held.radius, held.limit) == (version, radius, limit):
            return held
        synced = (
            _from_log(held) if held is not None and (held.radius, held.limit) == (radius, limit) else None
        )
        _held = synced or _load(version, newest, radius, limit)
        return _held


def forget() -> None:
    """Drop what this process holds (tests: each test's database starts again at the same ids)."""
    global _held
    with _lock:
        _held = None


def _load(version: int, newest: int, radius: int, limit: int) -> Held:
    """Every active key. The clock was read before the keys, so a change committed in between is applied again
    from the log on the next call (applying a change reads its opt-outs' keys as they are: it may be repeated)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT phash, optout_id FROM optout_optoutkey WHERE active AND kind = %s AND phash IS NOT NULL",
            [OptOutKey.Kind.PHASH],
        )
        rows = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 2)
    phashes = ActivePhashes.build(rows[:, 0].copy(), rows[:, 1].copy(), radius)
    return Held(version, newest, radius, limit, phashes, _load_exact(limit))


def _load_exact(limit: int) -> Exact | None:
    found: Exact = {kind: {} for kind in EXACT_KINDS}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT kind, key, MIN(optout_id) FROM optout_optoutkey WHERE active AND kind IN (%s, %s, %s)"
            " GROUP BY kind, key LIMIT %s",
            [*EXACT_KINDS, limit + 1],
        )
        rows = cursor.fetchall()
    if len(rows) > limit:
        return None
    for kind, key, optout_id in rows:
        found[kind][key] = optout_id
    return found


@dataclass(frozen=True)
class Changes:
    """What the change log says moved the registry since a process last read it."""

    optout_ids: list[int]
    deleted_keys: list[tuple[str, str]]  # (kind, key) of key rows that are gone
    change_id: int  # the newest log row read
    version: int  # the clock's version that row wrote


def changes_since(change_id: int, version: int) -> Changes | None:
    """The changes after log row `change_id` (which wrote `version`), or None where the log cannot vouch for
    them: that row missing or changed (it was read inside a transaction that rolled back, or the log has been
    pruned past it; a process behind by more than the log keeps also sees more than _LOG_MAX rows), no change
    at all (the clock moved without the log), a change not pinned on opt-outs, or too many changes (one full
    reload reads less)."""
    rows = list(
        RegistryChange.objects.filter(pk__gte=change_id)
        .order_by("pk")
        .values_list("pk", "version", "optout_id", "kind", "key")[: _LOG_MAX + 2]
    )
    if change_id == 0:
        # the clock never moved when it was read (a random version is never 0): every row is a change since
        if version != 0:
            return None
        changes = rows
    elif rows and tuple(rows[0][:2]) == (change_id, version):
        changes = rows[1:]
    else:
        return None
    if not changes or len(changes) > _LOG_MAX or any(optout_id is None for _, _, optout_id, _, _ in changes):
        return None
    optout_ids = sorted({int(optout_id) for _, _, optout_id, _, _ in changes if optout_id is not None})
    deleted = [(kind, key) for *_, kind, key in changes if kind]
    return Changes(optout_ids, deleted, changes[-1][0], changes[-1][1])


def _from_log(held: Held) -> Held | None:
    """`held` brought up to date from the change log, or None where the log cannot vouch for it."""
    changes = changes_since(held.change_id, held.version)
    if changes is None:
        return None
    exact = _refreshed_exact(held.exact, changes.optout_ids, changes.deleted_keys, held.limit)
    optout_ids = np.array(changes.optout_ids, dtype=np.int64)
    phashes = held.phashes.replaced(optout_ids, *_active_phashes(changes.optout_ids))
    return replace(held, version=changes.version, change_id=changes.change_id, phashes=phashes, exact=exact)


def _active_phashes(optout_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.array(
        list(
            OptOutKey.objects.filter(
                optout_id__in=optout_ids, active=True, kind=OptOutKey.Kind.PHASH, phash__isnull=False
            ).values_list("phash", "optout_id")
        ),
        dtype=np.int64,
    ).reshape(-1, 2)
    return rows[:, 0].copy(), rows[:, 1].copy()


def _refreshed_exact(exact: Exact | None, optout_ids: list[int], deleted: list[tuple[str, str]], limit: int):
    """Every exact key these opt-outs hold or held (active or not, and the deleted ones the log names) looked up
    again: each now maps to its lowest active opt-out, or leaves. Updated in place: a copy of up to
    OPTOUT_CHECK_MEMORY_KEYS keys per change would cost what the log saves, and a check running meanwhile in
    another thread reads each key as it is either before or after this change."""
    if exact is None:
        return None
    wanted: dict[str, set[str]] = {kind: set() for kind in EXACT_KINDS}
    rows = OptOutKey.objects.filter(optout_id__in=optout_ids, kind__in=EXACT_KINDS).values_list("kind", "key")
    for kind, key in [*rows, *deleted]:
        wanted.get(kind, set()).add(key)
    found = lookup_keys(wanted)
    for kind, keys in wanted.items():
        table = exact[kind]
        for key in keys:
            if key in found[kind]:
                table[key] = found[kind][key]
            else:
                table.pop(key, None)
    return exact if sum(map(len, exact.values())) <= limit else None


def _pg_text_array(values: set[str]) -> str:
    """A PostgreSQL text[] literal: one string parameter, where psycopg would adapt a list element by element."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def lookup_keys(wanted: dict[str, set[str]]) -> Exact:
    """{kind: {key: lowest active opt-out id}} for the given keys, in one round trip (one indexed scan per kind)."""
    found: Exact = {kind: {} for kind in wanted}
    wanted = {kind: keys for kind, keys in wanted.items() if keys}
    if not wanted:
        return found
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            parts = " UNION ALL ".join(
                "SELECT kind, key, MIN(optout_id) FROM optout_optoutkey"
                " WHERE active AND kind = %s AND key = ANY(%s::text[]) GROUP BY kind, key"
                for _ in wanted
            )
            params = [p for kind, keys in wanted.items() for p in (kind, _pg_text_array(keys))]
            cursor.execute(parts, params)
            rows = cursor.fetchall()
        else:
            rows = []
            for kind, keys in wanted.items():
                batch = list(keys)
                for start in range(0, len(batch), 500):
                    chunk = batch[start : start + 500]
                    marks = ",".join(["%s"] * len(chunk))
                    cursor.execute(
                        "SELECT kind, key, MIN(optout_id) FROM optout_optoutkey WHERE active AND kind = %s"
                        f" AND key IN ({marks}) GROUP BY kind, key",
                        [kind, *chunk],
                    )
                    rows += cursor.fetchall()
    for kind, key, optout_id in rows:
        found[kind][key] = optout_id
    return found
