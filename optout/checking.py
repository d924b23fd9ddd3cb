"""The bulk check: set-based lookups of URLs, domains and sha256 against the active keys (one indexed query per
kind), and pHash within a Hamming radius against an in-memory index of the active pHashes.

The pHash index is rebuilt when the registry's version (optout.models.RegistryClock) moves; the version is read
from the database on every call, so a check never answers from a stale registry.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection

from core.phash_index import PhashIndex
from optout.models import OptOutKey

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class CheckInputError(ValueError):
    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


def registry_version() -> int:
    """The registry clock: it moves with every change to the published keys (activation, withdrawal, revocation,
    gate narrowing, deletes: optout.services.publishing, optout.receivers). A request waiting for review publishes
    nothing, so it leaves every process's keys loaded."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(version), 0) FROM optout_registryclock WHERE id = 1")
        return int(cursor.fetchone()[0])


# --- pHash index -----------------------------------------------------------------------------------------------


@dataclass
class ActivePhashes:
    """The active pHashes in opt-out id order, so that of equally near matches the lowest opt-out id answers."""

    index: PhashIndex
    optout_ids: np.ndarray  # int64, one per indexed hash

    @classmethod
    def build(cls, hashes: np.ndarray, optout_ids: np.ndarray, radius: int) -> ActivePhashes:
        order = np.argsort(optout_ids, kind="stable")
        return cls(PhashIndex(hashes[order], radius), optout_ids[order])

    def match(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(optout id or -1, distance or -1) per query: the nearest active pHash within the radius."""
        rows, distances = self.index.nearest(queries)
        ids = np.full(len(rows), -1, dtype=np.int64)
        ids[rows >= 0] = self.optout_ids[rows[rows >= 0]]
        return ids, distances


_cache_lock = threading.Lock()
_cached: dict[str, object] = {"version": None, "radius": None, "index": None, "exact": None}


def phash_index() -> ActivePhashes:
    version, radius = registry_version(), settings.OPTOUT_CHECK_PHASH_RADIUS
    with _cache_lock:
        if _cached["version"] == version and _cached["radius"] == radius:
            return _cached["index"]  # type: ignore[return-value]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT phash, optout_id FROM optout_optoutkey WHERE active AND kind = %s AND phash IS NOT NULL",
                [OptOutKey.Kind.PHASH],
            )
            rows = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 2)
        index = ActivePhashes.build(rows[:, 0].copy(), rows[:, 1].copy(), radius)
        _cached.update(version=version, radius=radius, index=index)
        return index


EXACT_KINDS = (OptOutKey.Kind.SHA256, OptOutKey.Kind.URL, OptOutKey.Kind.DOMAIN)


def exact_keys() -> dict[str, dict[str, int]] | None:
    """{kind: {key: lowest active opt-out id}} held in memory while the registry is small enough
    (OPTOUT_CHECK_MEMORY_KEYS), reloaded when its version moves; None means "ask the database"."""
    version, limit = registry_version(), settings.OPTOUT_CHECK_MEMORY_KEYS
    with _cache_lock:
        cached = _cached["exact"]
        if isinstance(cached, tuple) and cached[:2] == (version, limit):
            return cached[2]
        loaded = _load_exact_keys(limit)
        _cached["exact"] = (version, limit, loaded)
        return loaded


def _load_exact_keys(limit: int) -> dict[str, dict[str, int]] | None:
    found: dict[str, dict[str, int]] = {kind: {} for kind in EXACT_KINDS}
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


# --- exact keys ------------------------------------------------------------------------------------------------


def _pg_text_array(values: set[str]) -> str:
    """A PostgreSQL text[] literal: one string parameter, where psycopg would adapt a list element by element."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def _lookup_all(wanted: dict[str, set[str]]) -> dict[str, dict[str, int]]:
    """{kind: {key: lowest active opt-out id}} for the given keys, in one round trip (one indexed scan per kind)."""
    found: dict[str, dict[str, int]] = {kind: {} for kind in wanted}
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


def _suffixes(host: str) -> tuple[str, ...]:
    """An already normalised host and its parent domains (core.urlnorm.parent_domains without re-normalising)."""
    labels = host.split(".")
    return tuple(".".join(labels[i:]) for i in range(len(labels) - 1)) or (host,)


# --- the check -------------------------------------------------------------------------------------------------


def _parse_phash(value) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{16}", value):
        number = int(value, 16)
        number = number - (1 << 64) if number >= (1 << 63) else number
    elif isinstance(value, str) and re.fullmatch(r"-?\d{1,20}", value):
        number = int(value)
    else:
        raise ValueError
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ValueError
    return number


@dataclass(slots=True)
class _Parsed:
    url: str = ""
    hosts: tuple[str, ...] = ()
    sha256: str = ""
    phash: int | None = None


def parse_items(items) -> list[_Parsed]:
    if not isinstance(items, list):
        raise CheckInputError("`items` must be a list.")
    limit = settings.OPTOUT_CHECK_MAX_ITEMS
    if len(items) > limit:
        raise CheckInputError(f"At most {limit:,} items per request; this one has {len(items):,}. Split it.")
    parsed = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise CheckInputError("Each item must be an object.", i)
        p = _Parsed()
        url, sha, phash = item.get("url"), item.get("sha256"), item.get("phash")
        if url is not None and not isinstance(url, str):
            raise CheckInputError("`url` is not an http(s) URL.", i)
        p.url = url or ""
        if sha is not None:
            if not isinstance(sha, str) or not _SHA256.match(sha := sha.lower()):
                raise CheckInputError("`sha256` must be 64 hex digits.", i)
            p.sha256 = sha
        if phash is not None:
            try:
                p.phash = _parse_phash(phash)
            except ValueError:
                raise CheckInputError("`phash` must be a signed int64 or 16 hex digits.", i) from None
        if not (url is not None or p.sha256 or p.phash is not None):
            raise CheckInputError("Each item needs a `url`, a `sha256` or a `phash`.", i)
        key = item.get("key")
        if key is not None and not isinstance(key, str | int):
            raise CheckInputError("`key` must be a string or an integer.", i)
        parsed.append(p)
    _normalise_urls(parsed, [p.url != "" or items[i].get("url") is not None for i, p in enumerate(parsed)])
    return parsed


def parse_works(rows: list[tuple[str, str, int | None]]) -> list[_Parsed]:
    """(url, sha256, pHash) of works in the collection, parsed as the check parses a request's items; a URL that
    is not http(s) simply gives no URL or domain key, as no caller could send it."""
    parsed = [_Parsed(sha256=(sha or "").lower(), phash=phash) for _, sha, phash in rows]
    for p, (url, _, _) in zip(parsed, rows, strict=True):
        p.url = url or ""
    _normalise_urls(parsed, [p.url != "" for p in parsed], strict=False)
    return parsed


def _normalise_urls(parsed: list[_Parsed], has_url: list[bool], *, strict: bool = True) -> None:
    """All URLs of a request normalised at once with array kernels (core.urlkeys), not one urlsplit each."""
    import pyarrow as pa

    from core.urlkeys import url_keys

    positions = [i for i, present in enumerate(has_url) if present]
    if not positions:
        return
    keys, hosts = url_keys(pa.array([parsed[i].url for i in positions], pa.string()))
    suffixes: dict[str, tuple[str, ...]] = {}
    for i, key, host in zip(positions, keys.to_pylist(), hosts.to_pylist(), strict=True):
        if not key and strict:
            raise CheckInputError("`url` is not an http(s) URL.", i)
        parsed[i].url = key or ""
        if not key:
            continue
        parsed[i].hosts = suffixes.get(host) or suffixes.setdefault(host, _suffixes(host))


def check(items: list) -> list[dict]:
    """One answer per item, in order: {key, allowed, optout_id, match, reason}; a URL no opt-out covers is then
    judged by its site's own signals."""
    found = match(parse_items(items))
    answers = [
        _answer(item.get("key", i), hit) for i, (item, hit) in enumerate(zip(items, found, strict=True))
    ]
    _apply_site_signals(items, answers)
    return answers


Match = tuple[int, str, str]  # (opt-out id, what matched, why)


def match(parsed: list[_Parsed]) -> list[Match | None]:
    """The one definition of "opted out": per work, the active opt-out whose keys match it, or None. The check
    API answers with it, and search, thumbnails and the asset API hide what it matches (optout.exclusions)."""
    hits = exact_keys() or _lookup_all(
        {
            OptOutKey.Kind.SHA256: {p.sha256 for p in parsed if p.sha256},
            OptOutKey.Kind.URL: {p.url for p in parsed if p.url},
            OptOutKey.Kind.DOMAIN: {h for p in parsed for h in p.hosts},
        }
    )
    sha_hits, url_hits, domain_hits = hits["sha256"], hits["url"], hits["domain"]
    with_phash = [i for i, p in enumerate(parsed) if p.phash is not None]
    phash_hits: dict[int, tuple[int, int]] = {}
    if with_phash:
        ids, dists = phash_index().match(np.array([parsed[i].phash for i in with_phash], dtype=np.int64))
        phash_hits = {i: (int(o), int(d)) for i, o, d in zip(with_phash, ids, dists, strict=True) if o >= 0}
    return [_match_one(p, i, sha_hits, url_hits, domain_hits, phash_hits) for i, p in enumerate(parsed)]


def _apply_site_signals(items: list, answers: list[dict]) -> None:
    """A URL no opt-out covers may still be refused by its own site (robots.txt AI groups, ai.txt, TDMRep,
    X-Robots-Tag), as fetched by websignals: the same decision manifest builds make."""
    from websignals.selectors import url_decisions

    positions = [i for i, a in enumerate(answers) if a["allowed"] and isinstance(items[i].get("url"), str)]
    for i, decision in zip(positions, url_decisions([items[i]["url"] for i in positions]), strict=True):
        if decision is not None:
            answers[i] = {
                **_denied(answers[i]["key"], None, "site_signal", decision.reason),
                "rule": decision.rule,
                "evidence_url": decision.evidence_url,
                "evidence_at": decision.evidence_at.isoformat(),
            }


def _match_one(p: _Parsed, i: int, sha_hits, url_hits, domain_hits, phash_hits) -> Match | None:
    if p.sha256 and p.sha256 in sha_hits:
        return sha_hits[p.sha256], "sha256", "the file's sha256 is opted out"
    if p.url and p.url in url_hits:
        return url_hits[p.url], "url", "the URL is opted out"
    for host in p.hosts:
        if host in domain_hits:
            return domain_hits[host], "domain", f"the domain {host} is opted out"
    if i in phash_hits:
        optout_id, dist = phash_hits[i]
        return optout_id, "phash", f"the image is within {dist} bits (pHash) of an opted-out work"
    return None


def _answer(key, found: Match | None) -> dict:
    if found is None:
        return {"key": key, "allowed": True, "optout_id": None, "match": None, "reason": "not opted out"}
    return _denied(key, *found)


def _denied(key, optout_id: int | None, match: str, reason: str) -> dict:
    return {"key": key, "allowed": False, "optout_id": optout_id, "match": match, "reason": reason}
