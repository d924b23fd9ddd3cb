"""Reads: ownership, visibility of opt-outs and claims, the assets a domain covers."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from django.conf import settings
from django.db.models import Q, QuerySet

from core.urlnorm import parent_domains
from optout.models import ClaimStatus, ContributorClaim, DomainClaim, OptOut
from provenance.models import Asset

OPERATORS_GROUP = "operators"


def is_operator(user) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    return user.is_staff and user.groups.filter(name=OPERATORS_GROUP).exists()


def optouts_visible_to(user) -> QuerySet[OptOut]:
    """Operators see every request; an artist sees only their own."""
    qs = OptOut.objects.select_related("artist", "contributor")
    return qs if is_operator(user) else qs.filter(artist_id=user.pk)


def domain_claims_visible_to(user) -> QuerySet[DomainClaim]:
    return DomainClaim.objects.all() if is_operator(user) else DomainClaim.objects.filter(artist_id=user.pk)


def contributor_claims_visible_to(user) -> QuerySet[ContributorClaim]:
    qs = ContributorClaim.objects.select_related("contributor")
    return qs if is_operator(user) else qs.filter(artist_id=user.pk)


def assets_under_domain(host: str) -> QuerySet[Asset]:
    """Works on the domain or any subdomain of it."""
    return Asset.objects.filter(Q(domain=host) | Q(domain__endswith="." + host))


def verified_owners(asset_ids: Iterable[int]) -> dict[int, int]:
    """{asset id: artist id} for works a verified artist owns, by contributor identity or by domain."""
    ids = list(asset_ids)
    rows = Asset.objects.filter(pk__in=ids).values_list("pk", "contributor_id", "domain")
    contributor_owner = dict(
        ContributorClaim.objects.filter(status=ClaimStatus.VERIFIED).values_list(
            "contributor_id", "artist_id"
        )
    )
    rows = list(rows)
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


def phash_near_copy_ids(asset_id: int) -> list[int]:
    """Fallback near-copy cluster: works whose pHash is within OPTOUT_NEAR_COPY_PHASH_RADIUS bits, or with the
    same sha256. Used only while the search cascade (embeddings.search.near_copy_ids) is not installed."""
    from provenance.hashing import phash_distances

    seed = Asset.objects.filter(pk=asset_id).values("phash", "sha256").first()
    if seed is None:
        return []
    same = set()
    if seed["sha256"]:
        same = set(Asset.objects.filter(sha256=seed["sha256"]).values_list("pk", flat=True))
    if seed["phash"] is None:
        return sorted(same)
    rows = np.array(
        list(Asset.objects.exclude(phash=None).values_list("pk", "phash").iterator(chunk_size=20000)),
        dtype=np.int64,
    ).reshape(-1, 2)
    close = rows[phash_distances(seed["phash"], rows[:, 1]) <= settings.OPTOUT_NEAR_COPY_PHASH_RADIUS, 0]
    return sorted(same | {int(i) for i in close})
