"""The bulk check: URLs, domains and sha256 against the active exact keys, and pHash within a Hamming radius
against the active pHashes, as this process holds them in step with the registry (optout.published_keys); exact
keys are looked up in the database instead (one indexed query per kind) while there are too many to hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from optout.models import OptOutKey
from optout.published_keys import lookup_keys, published_keys

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class CheckInputError(ValueError):
    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.index = index


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
    held = published_keys()
    hits = held.exact or lookup_keys(
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
        ids, dists = held.phashes.match(np.array([parsed[i].phash for i in with_phash], dtype=np.int64))
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
