"""The search exclusion provider: active opt-outs vanish from everyone else's results and stay, flagged, in
their owner's. Cached per process against the registry version and the newest asset id (both read on every
call), so an activation is visible to the next search with no index rebuild, and works ingested later under an
opted-out domain or identity are hidden too."""

from __future__ import annotations

import threading

from django.db import connection

from optout.checking import registry_version
from optout.models import OptOut, OptOutKey

_lock = threading.Lock()
_cached: dict[str, object] = {"version": None, "owners": {}}


def _max_asset_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM provenance_asset")
        return int(cursor.fetchone()[0])


def _load_owners() -> dict[int, frozenset[int]]:
    """{asset id: ids of the artists whose active opt-outs cover it}."""
    owners: dict[int, set[int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k.asset_id, o.artist_id FROM optout_optoutkey k JOIN optout_optout o ON o.id = k.optout_id"
            " WHERE k.active AND k.kind = %s",
            [OptOutKey.Kind.ASSET],
        )
        rows = list(cursor.fetchall())
        # works ingested after a domain / identity opt-out became active
        cursor.execute(
            "SELECT a.id, o.artist_id FROM provenance_asset a JOIN optout_optout o"
            " ON (o.scope = %s AND a.contributor_id = o.contributor_id)"
            " OR (o.scope = %s AND (a.domain = o.domain OR a.domain LIKE '%%.' || o.domain))"
            " WHERE o.status = %s",
            [OptOut.Scope.CONTRIBUTOR, OptOut.Scope.DOMAIN, OptOut.Status.ACTIVE],
        )
        rows += cursor.fetchall()
    for asset_id, artist_id in rows:
        owners.setdefault(int(asset_id), set()).add(int(artist_id))
    return {a: frozenset(s) for a, s in owners.items()}


def active_optout_owners() -> dict[int, frozenset[int]]:
    version = (registry_version(), _max_asset_id())
    with _lock:
        if _cached["version"] != version:
            _cached["owners"] = _load_owners()
            _cached["version"] = version
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
