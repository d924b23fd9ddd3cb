"""Reads: ownership, visibility of opt-outs and claims, the assets a domain covers."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q, QuerySet

from core.permissions import is_operator
from core.urlnorm import parent_domains
from optout.models import ClaimStatus, ContributorClaim, DomainClaim, OptOut
from provenance.models import Asset


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
