"""The search exclusion provider: active opt-outs vanish from everyone else's results (search, thumbnails, the asset
API) and stay, flagged, in their owner's.

"Is this work opted out, and by whom" has one answer: the check API's matcher (`optout.checking.match`) run over
every work in the collection, plus the works an active opt-out names by id, so search hides exactly what the check
API and a manifest build deny, works ingested later under an opted-out domain included. Cached per process against
the registry version and the newest asset id (both read on every call): a registry change reloads everything,
newly ingested works are matched alone.
"""

from __future__ import annotations

import threading

from django.db import connection

from optout.checking import match, parse_works
from optout.models import OptOut, OptOutKey
from optout.published_keys import registry_version
from provenance.models import Asset

_lock = threading.Lock()
_cached: dict[str, object] = {"registry": None, "newest": None, "owners": {}}
_BATCH = 20_000


def _max_asset_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM provenance_asset")
        return int(cursor.fetchone()[0])


def _load_owners(*, after: int = 0) -> dict[int, frozenset[int]]:
    """{asset id: ids of the artists whose active opt-outs cover it}, for the works with an id above `after`."""
    artist_of = dict(OptOut.objects.filter(status=OptOut.Status.ACTIVE).values_list("pk", "artist_id"))
    owners: dict[int, set[int]] = {}
    if not artist_of:
        return {}
    named = OptOutKey.objects.filter(active=True, kind=OptOutKey.Kind.ASSET, asset_id__gt=after)
    for asset_id, optout_id in named.values_list("asset_id", "optout_id").iterator(chunk_size=5000):
        if asset_id is not None:  # asset_id__gt already leaves out keys without a work
            owners.setdefault(asset_id, set()).add(artist_of[optout_id])
    works = Asset.objects.order_by("pk").values_list("pk", "url", "sha256", "phash")
    last = after
    while batch := list(works.filter(pk__gt=last)[:_BATCH]):
        last = batch[-1][0]
        for (asset_id, *_), found in zip(batch, match(parse_works([r[1:] for r in batch])), strict=True):
            if found is not None and found[0] in artist_of:
                owners.setdefault(asset_id, set()).add(artist_of[found[0]])
    return {a: frozenset(s) for a, s in owners.items()}


def active_optout_owners() -> dict[int, frozenset[int]]:
    """Reloaded in full when the registry changes; works ingested since the last load are matched on their own."""
    registry, newest = registry_version(), _max_asset_id()
    with _lock:
        if _cached["registry"] != registry:
            _cached.update(owners=_load_owners(), registry=registry, newest=newest)
        elif _cached["newest"] != newest:
            added = _load_owners(after=_cached["newest"])  # type: ignore[arg-type]
            _cached.update(owners={**_cached["owners"], **added}, newest=newest)  # type: ignore[dict-item]
        return _cached["owners"]  # type: ignore[return-value]


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
