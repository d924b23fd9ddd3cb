"""Opt-out requests: one per artist and scope (works, a work and its near copies, a contributor identity, a domain),
planned against what other verified artists own, saved with its items and keys, and activated at once where the
artist's verified claims allow it (optout.services.transitions)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from core.exceptions import ApplicationError
from core.urlnorm import normalize_url
from optout import audit, idempotency, selectors
from optout.domains import clean_domain
from optout.models import ClaimStatus, DomainClaim, OptOut, OptOutItem, OptOutKey
from optout.services.claims import contributor_claim_create, domain_claim_create
from optout.services.transitions import optout_history_write, optout_transition
from provenance.hashing import phash_is_informative
from provenance.models import Asset

User = get_user_model()
Status = OptOut.Status
Scope = OptOut.Scope
AUDITED_ASSET_IDS = 10_000  # the works of a request written into its audit row (the count always is)


def near_copies_of(asset_id: int) -> list[int]:
    """The works the search cascade groups with this one as its copies, nearest first (the bound is
    OPTOUT_NEAR_COPY_REVIEW_MAX; the first OPTOUT_NEAR_COPY_AUTO_MAX go with the work, the rest to review)."""
    from embeddings.search.clusters import confirmed_near_copy_ids

    return confirmed_near_copy_ids(
        asset_id,
        phash_radius=settings.OPTOUT_NEAR_COPY_PHASH_RADIUS,
        limit=settings.OPTOUT_NEAR_COPY_REVIEW_MAX,
    )


def optout_create(
    *,
    artist,
    scope: str,
    asset_ids: list[int] | None = None,
    asset_id: int | None = None,
    contributor_id: int | None = None,
    domain: str = "",
    reason: str = "",
    idempotency_key: str | None = None,
) -> tuple[OptOut, bool]:
    """(opt-out, created). A replay (same Idempotency-Key and request, or the same domain / identity / seed work
    while the first request is pending or active) returns the first opt-out unchanged; the same key with another
    request answers 422."""
    digest = idempotency.key_digest(idempotency_key) if idempotency_key else None
    fingerprint = idempotency.request_fingerprint(
        scope=scope, asset_ids=asset_ids, asset_id=asset_id, contributor_id=contributor_id, domain=domain,
        reason=reason,
    )  # fmt: skip
    if digest and (existing := idempotency.replay_of(artist=artist, digest=digest, fingerprint=fingerprint)):
        return existing, False
    builders: dict[str, Callable[..., dict]] = {
        Scope.WORKS: _plan_works,
        Scope.NEAR_COPIES: _plan_near_copies,
        Scope.CONTRIBUTOR: _plan_contributor,
        Scope.DOMAIN: _plan_domain,
    }
    builder = builders.get(scope)
    if builder is None:
        raise ApplicationError(f"Unknown scope {scope!r}.", extra={"scopes": list(Scope.values)})
    plan = builder(
        artist, asset_ids=asset_ids, asset_id=asset_id, contributor_id=contributor_id, domain=domain
    )
    with transaction.atomic():
        # One artist's creates queue on their user row, so a concurrent replay or duplicate sees the first one.
        # NO KEY: rows that merely reference the user (a revoke's history row, checked at COMMIT as PostgreSQL's
        # foreign keys are deferred) must not wait on it, or a revoke holding the audit head would deadlock.
        User.objects.select_for_update(no_key=True).only("pk").get(pk=artist.pk)
        if digest and (
            existing := idempotency.replay_of(artist=artist, digest=digest, fingerprint=fingerprint)
        ):
            return existing, False
        duplicate = _same_open_request(artist, scope, plan)
        if duplicate is not None:
            return duplicate, False
        key = (digest, fingerprint) if digest else None
        return _optout_save(artist=artist, scope=scope, plan=plan, reason=reason, key=key), True


def _same_open_request(artist, scope: str, plan: dict) -> OptOut | None:
    open_ = OptOut.objects.filter(artist=artist, scope=scope, status__in=[Status.PENDING, Status.ACTIVE])
    if scope == Scope.DOMAIN:
        return open_.filter(domain=plan["domain"]).first()
    if scope == Scope.CONTRIBUTOR:
        return open_.filter(contributor_id=plan["contributor"].pk).first()
    if scope == Scope.NEAR_COPIES:
        return open_.filter(seed_asset_id=plan["seed"]).first()
    return None


def _plan_works(artist, *, asset_ids, **_) -> dict:
    ids = sorted({int(i) for i in asset_ids or []})
    if not ids:
        raise ApplicationError("Choose at least one work (asset_ids).")
    if len(ids) > settings.OPTOUT_MAX_WORKS_PER_REQUEST:
        raise ApplicationError(f"At most {settings.OPTOUT_MAX_WORKS_PER_REQUEST} works per request.")
    found = set(Asset.objects.filter(pk__in=ids).values_list("pk", flat=True))
    if missing := [i for i in ids if i not in found]:
        raise ApplicationError("Some works do not exist.", extra={"missing": missing[:100]}, status_code=404)
    others = selectors.owned_by_others(artist, ids)
    if others:
        raise ApplicationError(
            "Some works are claimed by another verified artist.",
            extra={"asset_ids": sorted(others)[:100]},
            status_code=409,
        )
    owned = selectors.verified_owners(ids)
    active = all(owned.get(i) == artist.pk for i in ids)
    return {"assets": ids, "active": active, "note": "verified owner" if active else "awaiting review"}


def _plan_near_copies(artist, *, asset_id, **_) -> dict:
    if asset_id is None or not Asset.objects.filter(pk=asset_id).exists():
        raise ApplicationError("No such work (asset_id).", status_code=404)
    if selectors.owned_by_others(artist, [asset_id]):
        raise ApplicationError("This work is claimed by another verified artist.", status_code=409)
    copies = [int(i) for i in dict.fromkeys(near_copies_of(asset_id)) if int(i) != int(asset_id)]
    # a copy that another verified artist owns stays theirs to decide about
    others = selectors.owned_by_others(artist, copies)
    copies = [i for i in copies if i not in others]
    cap = settings.OPTOUT_NEAR_COPY_AUTO_MAX
    active = selectors.verified_owners([asset_id]).get(asset_id) == artist.pk
    note = "near-copies of a verified work" if active else "awaiting verification of the work"
    return {"assets": sorted([int(asset_id), *copies[:cap]]), "seed": int(asset_id), "active": active,
            "note": note, "skipped": sorted(others), "review": sorted(copies[cap:])}  # fmt: skip


def _plan_contributor(artist, *, contributor_id, **_) -> dict:
    if contributor_id is None:
        raise ApplicationError("contributor_id is required for this scope.")
    claim, _created = contributor_claim_create(artist=artist, contributor_id=contributor_id)
    if claim.status == ClaimStatus.REJECTED:
        raise ApplicationError("Your claim to this identity was rejected.", status_code=403)
    ids = list(Asset.objects.filter(contributor_id=contributor_id).values_list("pk", flat=True))
    others = selectors.owned_by_others(artist, ids)
    ids = [i for i in ids if i not in others]
    active = claim.status == ClaimStatus.VERIFIED
    note = "identity verified" if active else "awaiting identity review"
    return {"assets": ids, "contributor": claim.contributor, "active": active, "note": note}


def _plan_domain(artist, *, domain, **_) -> dict:
    host = clean_domain(domain or "")
    if DomainClaim.objects.filter(domain=host, status=ClaimStatus.VERIFIED).exclude(artist=artist).exists():
        raise ApplicationError("Another artist has verified this domain.", status_code=409)
    claim, _created = domain_claim_create(artist=artist, domain=host)
    ids = list(selectors.assets_under_domain(host).values_list("pk", flat=True))
    others = selectors.owned_by_others(artist, ids)
    ids = [i for i in ids if i not in others]
    active = claim.status == ClaimStatus.VERIFIED
    note = "domain verified" if active else "awaiting domain verification"
    return {"assets": ids, "domain": host, "active": active, "note": note}


@transaction.atomic
def _optout_save(*, artist, scope: str, plan: dict, reason: str, key: tuple[str, str] | None) -> OptOut:
    optout = OptOut.objects.create(
        artist=artist,
        scope=scope,
        reason=reason[:1000],
        seed_asset_id=plan.get("seed"),
        contributor=plan.get("contributor"),
        domain=plan.get("domain", ""),
        idempotency_key=key[0] if key else None,
        idempotency_fingerprint=key[1] if key else "",
    )
    OptOutItem.objects.bulk_create([OptOutItem(optout=optout, asset_id=i) for i in plan["assets"]])
    _audit_requested(optout=optout, plan=plan)
    _keys_create(optout=optout, asset_ids=plan["assets"], domain=plan.get("domain", ""))
    optout_history_write(optout=optout, from_status="", to=Status.PENDING, actor=artist, note="requested")
    if plan["active"]:
        optout_transition(optout=optout, to=Status.ACTIVE, actor=None, note=plan["note"])
    if plan.get("review"):
        # copies past the automatic bound wait for an operator, as a request of their own
        reason = f"near-copies of work {plan['seed']} past the automatic limit of {settings.OPTOUT_NEAR_COPY_AUTO_MAX}"
        _optout_save(artist=artist, scope=Scope.WORKS, plan={"assets": plan["review"], "active": False},
                     reason=reason, key=None)  # fmt: skip
    return optout


def _audit_requested(*, optout: OptOut, plan: dict) -> None:
    """The request itself (who, what, why), logged when it is made, whether it goes active or waits for review."""
    assets = plan["assets"]
    audit.append(
        event="optout.requested",
        payload={"optout_id": optout.pk, "artist_id": optout.artist_id, "scope": optout.scope,
                 "reason": optout.reason, "domain": optout.domain, "contributor_id": optout.contributor_id,
                 "seed_asset_id": optout.seed_asset_id, "asset_count": len(assets),
                 "asset_ids": assets[:AUDITED_ASSET_IDS], "skipped_asset_ids": plan.get("skipped", [])[:1000],
                 "at": optout.created_at.isoformat()},
    )  # fmt: skip


def _keys_create(*, optout: OptOut, asset_ids: list[int], domain: str) -> None:
    keys: dict[tuple[str, str], OptOutKey] = {}

    def add(kind: str, key: str, **extra) -> None:
        if key:
            keys.setdefault((kind, key), OptOutKey(optout=optout, kind=kind, key=key, **extra))

    rows = Asset.objects.filter(pk__in=asset_ids).values_list("pk", "sha256", "phash", "url")
    for pk, sha256, phash, url in rows.iterator(chunk_size=2000):
        add(OptOutKey.Kind.ASSET, str(pk), asset_id=pk)
        add(OptOutKey.Kind.SHA256, (sha256 or "").lower(), asset_id=pk)
        # a flat image's pHash would match every other flat image
        if phash is not None and phash_is_informative(phash):
            add(OptOutKey.Kind.PHASH, str(phash), phash=phash, asset_id=pk)
        add(OptOutKey.Kind.URL, normalize_url(url or ""), asset_id=pk)
    add(OptOutKey.Kind.DOMAIN, domain)
    OptOutKey.objects.bulk_create(keys.values(), batch_size=5000)
