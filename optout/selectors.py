"""Reads: ownership, visibility of opt-outs and claims, the assets a domain covers."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from django.db.models import Q, QuerySet

from core.permissions import is_operator
from core.phash_index import PhashIndex
from core.urlnorm import normalize_url, parent_domains
from optout.models import ClaimStatus, ContributorClaim, DomainClaim, OptOut, OptOutKey
from provenance.models import Asset

_CHUNK = 500


def optouts_visible_to(user) -> QuerySet[OptOut]:
    """Operators see every request; an artist sees only their own."""
    qs = OptOut.objects.select_related("artist", "contributor")
    return qs if is_operator(user) else qs.filter(artist_id=user.pk)


def domain_claims_visible_to(user) -> QuerySet[DomainClaim]:
    return DomainClaim.objects.all() if is_operator(user) else DomainClaim.objects.filter(artist_id=user.pk)


def contributor_claims_visible_to(user) -> QuerySet[ContributorClaim]:
    qs = ContributorClaim.objects.select_related("contributor")
    return qs if is_operator(user) else qs.filter(artist_id=user.pk)


def optout_covered_asset_ids(*, optout: OptOut, limit: int) -> list[int]:
    """The works an opt-out covers, not those the ownership gate left out (another verified artist owns them)."""
    covered = optout.items.filter(excluded_at=None).order_by("asset_id")
    return list(covered.values_list("asset_id", flat=True)[:limit])


def owned_by_others(artist, asset_ids: Iterable[int]) -> dict[int, int]:
    """{asset id: owner id} of the works among `asset_ids` that a verified artist other than `artist` owns."""
    owners = verified_owners(asset_ids)
    return {a: owner for a, owner in owners.items() if owner != artist.pk}


def assets_under_domain(host: str) -> QuerySet[Asset]:
    """Works on the domain or any subdomain of it."""
    return Asset.objects.filter(Q(domain=host) | Q(domain__endswith="." + host))


def works_matching_keys(
    keys: Iterable[tuple[str, str, int | None]],
    phash_radius: int,
    work_phashes: tuple[np.ndarray, np.ndarray] | None = None,
) -> set[int]:
    """Works that one of the keys (kind, key, pHash) names or matches: same sha256, same URL (as stored), pHash
    within the radius, on a domain key's domain or under it, or an asset key's own work. A superset of what the
    check's matcher would match them to (it picks one opt-out per work), never less. `work_phashes` (ids,
    pHashes of every work), where the caller holds them, saves reading them from the database."""
    keys = list(keys)
    found = {int(key) for kind, key, _ in keys if kind == OptOutKey.Kind.ASSET and key.isdigit()}
    shas = [key for kind, key, _ in keys if kind == OptOutKey.Kind.SHA256]
    for start in range(0, len(shas), _CHUNK):
        found |= set(
            Asset.objects.filter(sha256__in=shas[start : start + _CHUNK]).values_list("pk", flat=True)
        )
    url_keys = {key for kind, key, _ in keys if kind == OptOutKey.Kind.URL}
    hosts = sorted({key.split("/", 1)[0].split(":", 1)[0] for key in url_keys})
    for start in range(0, len(hosts), _CHUNK):
        rows = Asset.objects.filter(domain__in=hosts[start : start + _CHUNK]).values_list("pk", "url")
        found |= {pk for pk, url in rows.iterator(chunk_size=5000) if normalize_url(url or "") in url_keys}
    for domain in {key for kind, key, _ in keys if kind == OptOutKey.Kind.DOMAIN}:
        found |= set(assets_under_domain(domain).values_list("pk", flat=True))
    phashes = [p for kind, _, p in keys if kind == OptOutKey.Kind.PHASH and p is not None]
    if phashes:
        ids, work_hashes = work_phashes or phashes_of(Asset.objects.all())
        matched = PhashIndex(np.array(phashes, dtype=np.int64), phash_radius).lookup(work_hashes)
        found |= {int(i) for i in ids[matched >= 0]}
    return found


def phashes_of(works: QuerySet[Asset]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, pHashes) of the works that have a pHash."""
    rows = np.array(list(works.exclude(phash=None).values_list("pk", "phash")), dtype=np.int64).reshape(-1, 2)
    return rows[:, 0].copy(), rows[:, 1].copy()


def verified_owners(asset_ids: Iterable[int]) -> dict[int, int]:
    """{asset id: artist id} for works a verified artist owns, by contributor identity or by domain."""
    ids = list(asset_ids)
    rows = list(Asset.objects.filter(pk__in=ids).values_list("pk", "contributor_id", "domain"))
    contributor_owner = dict(
        ContributorClaim.objects.filter(status=ClaimStatus.VERIFIED).values_list(
            "contributor_id", "artist_id"
        )
    )
    hosts = {h for _, _, domain in rows if domain for h in parent_domains(domain)}
    domain_owner = dict(
        DomainClaim.objects.filter(status=ClaimStatus.VERIFIED, domain__in=hosts).values_list(
            "domain", "artist_id"
        )
    )
    owners: dict[int, int] = {}
    for pk, contributor_id, domain in rows:
        if contributor_id in contributor_owner:
            owners[pk] = contributor_owner[contributor_id]
            continue
        for host in parent_domains(domain) if domain else []:
            if host in domain_owner:
                owners[pk] = domain_owner[host]
                break
    return owners
