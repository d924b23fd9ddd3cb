"""The ownership gate: what an opt-out may publish, decided when it activates and again whenever ownership moves.

Every activation path (operator approval, domain verification, identity approval, C2PA signer binding, near-copy
expansion) goes through `optout_transition` (optout.services.transitions), which calls `gate_apply` in the same transaction before any key
goes live; a newly verified claim calls `gate_reapply_for_owner`. The invariant: no key of an artist's opt-out
covers a work, a host or a near-identical image that another verified artist owns. So the gate

- takes out works another verified artist owns (their items are marked excluded, their keys withdrawn);
- withdraws a key of a kept work that would still match an owned one (same bytes, same URL, pHash within the
  check/manifest radius), since the check API and manifests match keys, not works;
- withdraws a domain key when anything under the domain was skipped or another artist verified a host at or
  under it: the opt-out then publishes per-work keys only (a domain key would deny the owner's host).

Withdrawn keys and excluded items stay as rows with their time, so nothing is erased and a registry rebuilt as of
an earlier instant is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db.models import Q

from core.urlnorm import normalize_url, parent_domains
from optout import selectors
from optout.models import ClaimStatus, DomainClaim, OptOut, OptOutItem, OptOutKey
from provenance.models import Asset

Kind = OptOutKey.Kind
_CHUNK = 500


@dataclass(frozen=True)
class Coverage:
    kept: frozenset[int]
    skipped: dict[int, int] = field(default_factory=dict)  # work -> the verified artist who owns it
    colliding_keys: frozenset[int] = frozenset()  # key ids matching a work another verified artist owns
    blocked_hosts: tuple[str, ...] = ()  # hosts at or under the opt-out's domain another artist verified

    @property
    def domain_key_allowed(self) -> bool:
        return not self.skipped and not self.blocked_hosts

    def summary(self) -> dict:
        return {"skipped": sorted(self.skipped)[:1000], "colliding_keys": len(self.colliding_keys),
                "blocked_hosts": list(self.blocked_hosts)[:100]}  # fmt: skip


def match_radius() -> int:
    """The widest pHash radius any consumer of the keys matches with (the check API, manifest builds)."""
    return max(settings.OPTOUT_CHECK_PHASH_RADIUS, settings.MANIFEST_PHASH_RADIUS)


def optout_coverage(optout: OptOut) -> Coverage:
    items = set(OptOutItem.objects.filter(optout=optout, excluded_at=None).values_list("asset_id", flat=True))
    candidates = set(items)
    if optout.scope == OptOut.Scope.DOMAIN:
        candidates |= set(selectors.assets_under_domain(optout.domain).values_list("pk", flat=True))
    owners = selectors.verified_owners(candidates)
    skipped = {a: o for a, o in owners.items() if o != optout.artist_id}
    kept = frozenset(items - set(skipped))
    blocked: tuple[str, ...] = ()
    if optout.scope == OptOut.Scope.DOMAIN and optout.domain:
        blocked = tuple(
            DomainClaim.objects.filter(status=ClaimStatus.VERIFIED)
            .exclude(artist_id=optout.artist_id)
            .filter(Q(domain=optout.domain) | Q(domain__endswith="." + optout.domain))
            .order_by("domain")
            .values_list("domain", flat=True)
        )
    return Coverage(kept, skipped, _colliding_keys(optout, kept, skipped), blocked)


def _colliding_keys(optout: OptOut, kept: frozenset[int], skipped: dict[int, int]) -> frozenset[int]:
    keys = list(
        OptOutKey.objects.filter(
            optout=optout, withdrawn_at=None, kind__in=[Kind.SHA256, Kind.URL, Kind.PHASH]
        )
        .exclude(asset_id__in=list(skipped))
        .values_list("pk", "kind", "key", "phash")
    )
    if not keys:
        return frozenset()
    neighbours = selectors.works_matching_keys(
        [(kind, key, phash) for _, kind, key, phash in keys], match_radius()
    )
    others = _owned_by_others(neighbours - kept, optout.artist_id)
    if not others:
        return frozenset()
    rows = list(Asset.objects.filter(pk__in=others).values_list("sha256", "url", "phash"))
    shas = {(s or "").lower() for s, _, _ in rows}
    urls = {normalize_url(u or "") for _, u, _ in rows}
    owned_phashes = np.array([p for _, _, p in rows if p is not None], dtype=np.int64)
    hit = set()
    for pk, kind, key, phash in keys:
        if (kind == Kind.SHA256 and key in shas) or (kind == Kind.URL and key in urls):
            hit.add(pk)
        elif kind == Kind.PHASH and phash is not None and len(owned_phashes) and _near(phash, owned_phashes):
            hit.add(pk)
    return frozenset(hit)


def _near(phash: int, others: np.ndarray) -> bool:
    distances = np.bitwise_count((others ^ np.int64(phash)).view(np.uint64))
    return bool((distances <= match_radius()).any())


def _owned_by_others(asset_ids: Iterable[int], artist_id: int) -> set[int]:
    return {a for a, owner in selectors.verified_owners(asset_ids).items() if owner != artist_id}


def gate_apply(*, optout: OptOut, now: datetime) -> tuple[Coverage, bool]:
    """(coverage, changed): exclude and withdraw what the opt-out may no longer publish. Call inside the
    transaction that activates it (or re-checks it), with the opt-out row locked."""
    coverage = optout_coverage(optout)
    excluded = OptOutItem.objects.filter(optout=optout, asset_id__in=list(coverage.skipped), excluded_at=None)
    changed = excluded.update(excluded_at=now) > 0
    withdraw = Q(asset_id__in=list(coverage.skipped)) | Q(pk__in=list(coverage.colliding_keys))
    if optout.scope == OptOut.Scope.DOMAIN and not coverage.domain_key_allowed:
        withdraw |= Q(kind=Kind.DOMAIN)
    live = OptOutKey.objects.filter(optout=optout, withdrawn_at=None)
    changed = live.filter(withdraw).update(active=False, withdrawn_at=now) > 0 or changed
    return coverage, changed


def publishes_anything(optout: OptOut) -> bool:
    return OptOutKey.objects.filter(optout=optout, withdrawn_at=None).exists()


def optouts_touching(*, asset_ids: Iterable[int], hosts: Iterable[str], artist_id: int) -> list[int]:
    """Ids of other artists' active opt-outs with a live key matching one of these works or hosts (what a newly
    verified owner now owns), so the gate can run on them again."""
    ids = list(asset_ids)
    rows = list(Asset.objects.filter(pk__in=ids).values_list("pk", "sha256", "url", "phash", "domain"))
    wanted = {
        Kind.ASSET: {str(pk) for pk, *_ in rows},
        Kind.SHA256: {(sha or "").lower() for _, sha, *_ in rows if sha},
        Kind.URL: {normalize_url(url or "") for _, _, url, *_ in rows if url},
        Kind.DOMAIN: {h for host in [*hosts, *(r[4] for r in rows if r[4])] for h in parent_domains(host)},
    }
    live = OptOutKey.objects.filter(active=True).exclude(optout__artist_id=artist_id)
    found: set[int] = set()
    for kind, keys in wanted.items():
        keys_list = sorted(keys)
        for start in range(0, len(keys_list), _CHUNK):
            chunk = keys_list[start : start + _CHUNK]
            found |= set(live.filter(kind=kind, key__in=chunk).values_list("optout_id", flat=True))
    owned = [r[3] for r in rows if r[3] is not None]
    if owned:
        keyed = np.array(list(live.filter(kind=Kind.PHASH).values_list("optout_id", "phash")), dtype=np.int64)
        keyed = keyed.reshape(-1, 2)
        for phash in owned:
            close = np.bitwise_count((keyed[:, 1] ^ np.int64(phash)).view(np.uint64)) <= match_radius()
            found.update(int(i) for i in keyed[close, 0])
    return sorted(found)
