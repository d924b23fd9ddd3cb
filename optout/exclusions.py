"""The search exclusion provider: active opt-outs vanish from everyone else's results (search, thumbnails, the asset
API) and stay, flagged, in their owner's.

"Is this work opted out, and by whom" has one answer: the check API's matcher (`optout.checking.match`) run over
every work in the collection, plus the works an active opt-out names by id, so search hides exactly what the check
API and a manifest build deny, works ingested later under an opted-out domain included. Cached per process against
the registry clock and the newest asset id (both read on every call). A registry change is applied from the
registry's change log (optout.published_keys.changes_since): only the works its opt-outs covered or now cover are
matched again, so an approval costs what that opt-out covers, not a pass over the whole collection; what the log
cannot vouch for reloads everything. Newly ingested works are matched alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import connection

from optout.checking import match, parse_works
from optout.models import OptOut, OptOutKey
from optout.published_keys import changes_since, registry_clock
from optout.selectors import phashes_of, works_matching_keys
from provenance.models import Asset

_BATCH = 20_000
_IDS_PER_QUERY = 5_000


@dataclass
class _Owners:
    """{asset id: the opt-outs that cover it}, and the same read the other way, for the changes to come."""

    version: int | None = None  # None: nothing loaded yet
    change_id: int = 0
    newest: int = 0
    covering: dict[int, set[int]] = field(default_factory=dict)  # asset id -> opt-out ids
    covered: dict[int, set[int]] = field(default_factory=dict)  # opt-out id -> asset ids
    artist_of: dict[int, int] = field(default_factory=dict)  # opt-out id -> artist id
    # asset id -> artist ids, what callers read
    owners: dict[int, frozenset[int]] = field(default_factory=dict)
    # every work's (id, pHash), so that a change finds the works near its pHash keys without reading them all again
    work_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    work_phashes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def set_works(
        self, asset_ids: Iterable[int], covering: dict[int, set[int]], artist_of: dict[int, int]
    ) -> None:
        """These works' covering opt-outs are now `covering` (absent: none). `owners` is replaced, not changed:
        a search in another thread keeps reading the one it was given."""
        self.artist_of.update(artist_of)
        self.owners = dict(self.owners)
        for asset_id in asset_ids:
            for optout_id in self.covering.pop(asset_id, ()):
                self.covered.get(optout_id, set()).discard(asset_id)
            self.owners.pop(asset_id, None)
            if covering.get(asset_id):
                self.covering[asset_id] = covering[asset_id]
                for optout_id in covering[asset_id]:
                    self.covered.setdefault(optout_id, set()).add(asset_id)
                self.owners[asset_id] = frozenset(self.artist_of[o] for o in covering[asset_id])


_lock = threading.Lock()
_cached = _Owners()


def _max_asset_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM provenance_asset")
        return int(cursor.fetchone()[0])


def _covering(works) -> tuple[dict[int, set[int]], dict[int, int]]:
    """({asset id: active opt-outs covering it}, {opt-out id: artist id}) for the works of a queryset."""
    artist_of = dict(OptOut.objects.filter(status=OptOut.Status.ACTIVE).values_list("pk", "artist_id"))
    covering: dict[int, set[int]] = {}
    if not artist_of:
        return {}, {}
    named = OptOutKey.objects.filter(active=True, kind=OptOutKey.Kind.ASSET, asset_id__in=works.values("pk"))
    for asset_id, optout_id in named.values_list("asset_id", "optout_id").iterator(chunk_size=5000):
        if asset_id is not None and optout_id in artist_of:
            covering.setdefault(asset_id, set()).add(optout_id)
    rows = works.order_by("pk").values_list("pk", "url", "sha256", "phash")
    last = 0
    while batch := list(rows.filter(pk__gt=last)[:_BATCH]):
        last = batch[-1][0]
        for (asset_id, *_), found in zip(batch, match(parse_works([r[1:] for r in batch])), strict=True):
            if found is not None and found[0] in artist_of:
                covering.setdefault(asset_id, set()).add(found[0])
    return covering, artist_of


def _reload(version: int, change_id: int, newest: int) -> _Owners:
    covering, artist_of = _covering(Asset.objects.all())
    fresh = _Owners(version, change_id, newest, artist_of=artist_of)
    fresh.set_works(covering, covering, {})
    fresh.work_ids, fresh.work_phashes = phashes_of(Asset.objects.filter(pk__lte=newest))
    return fresh


def _apply(cached: _Owners, optout_ids: list[int]) -> None:
    """Match again the works these opt-outs covered and the works their active keys match now."""
    keys = OptOutKey.objects.filter(optout_id__in=optout_ids, active=True).values_list("kind", "key", "phash")
    radius = settings.OPTOUT_CHECK_PHASH_RADIUS
    now = works_matching_keys(keys, radius, (cached.work_ids, cached.work_phashes))
    works = sorted(now | {a for o in optout_ids for a in cached.covered.pop(o, set())})
    covering: dict[int, set[int]] = {}
    artist_of: dict[int, int] = {}
    # a domain's works can pass a database's parameter limit
    for start in range(0, len(works), _IDS_PER_QUERY):
        found, artists = _covering(Asset.objects.filter(pk__in=works[start : start + _IDS_PER_QUERY]))
        covering.update(found)
        artist_of.update(artists)
    cached.set_works(works, covering, artist_of)


def active_optout_owners() -> dict[int, frozenset[int]]:
    """{asset id: artists whose active opt-outs cover it}, in step with the registry and the collection."""
    global _cached
    (version, change_id), newest = registry_clock(), _max_asset_id()
    with _lock:
        if _cached.version != version:
            changes = None if _cached.version is None else changes_since(_cached.change_id, _cached.version)
            if changes is None:
                _cached = _reload(version, change_id, newest)
            else:
                _apply(_cached, changes.optout_ids)
                _cached.version, _cached.change_id = changes.version, changes.change_id
        if _cached.newest != newest:
            added = Asset.objects.filter(pk__gt=_cached.newest, pk__lte=newest)
            covering, artist_of = _covering(added)
            _cached.set_works(covering, covering, artist_of)
            ids, phashes = phashes_of(added)
            _cached.work_ids = np.concatenate([_cached.work_ids, ids])
            _cached.work_phashes = np.concatenate([_cached.work_phashes, phashes])
            _cached.newest = newest
        return _cached.owners


def forget() -> None:
    """Drop what this process holds (tests: each test's database starts again at the same ids)."""
    global _cached
    with _lock:
        _cached = _Owners()


def optout_exclusions(user) -> tuple[set[int], set[int]]:
    """(hidden, flagged): the caller's own opted-out works are flagged, everyone else's hidden."""
    user_id = getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None
    hidden, flagged = set(), set()
    for asset_id, artists in active_optout_owners().items():
        if user_id is not None and artists == {user_id}:
            flagged.add(asset_id)
        else:
            hidden.add(asset_id)
    return hidden, flagged
