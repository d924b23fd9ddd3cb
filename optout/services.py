"""Writes: claims, opt-out requests and their state machine, audit appends.

Invariants kept here:
- nobody opts out a work another verified artist owns (owner = verified contributor claim or verified domain):
  every activation goes through `_transition`, which runs the ownership gate (optout.gate) in the same
  transaction, and a newly verified claim runs the gate again on other artists' active opt-outs it touches;
- the registry clock moves with every change to what is published, so no process answers from a stale cache;
- every state change is a conditional UPDATE (`WHERE status = <from>`), so a replayed or concurrent change is a
  no-op, and it writes a history row, flips the opt-out's keys' `active` flag and appends to the audit log in
  the same transaction; e-mails and the activated/revoked signals go out only after commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from core.exceptions import ApplicationError
from core.urlnorm import normalize_url
from optout import audit, gate, idempotency, notifications, selectors
from optout import signals as optout_signals
from optout.domains import clean_domain
from optout.models import (
    ClaimStatus,
    ContributorClaim,
    DomainClaim,
    OptOut,
    OptOutItem,
    OptOutKey,
    OptOutStateChange,
    RegistryClock,
    SignerBinding,
)
from optout.verification import HttpFetcher, TxtResolver, VerificationFailed, check_dns, check_http
from provenance.hashing import phash_is_informative
from provenance.models import Asset, Contributor

User = get_user_model()
Status = OptOut.Status
Scope = OptOut.Scope
AUDITED_ASSET_IDS = 10_000  # the works of a request written into its audit row (the count always is)


def audit_append(*, event: str, payload: dict) -> None:
    """Append one event to the hash-chained audit log (also for other apps' rule decisions)."""
    audit.append(event=event, payload=payload)


def registry_touch() -> None:
    """Move the registry clock: every in-process cache of the published keys reloads on its next read. A random
    value, not a counter: a rolled-back change followed by another would repeat a counter's value while a cache
    built inside the rolled-back transaction still holds it."""
    version = secrets.randbits(62)
    if not RegistryClock.objects.filter(pk=1).update(version=version):
        RegistryClock.objects.update_or_create(pk=1, defaults={"version": version})


# --- claims -----------------------------------------------------------------------------------------------------


@transaction.atomic
def domain_claim_create(*, artist, domain: str) -> tuple[DomainClaim, bool]:
    """Naturally idempotent: claiming the same domain again returns the first claim and its token."""
    host = clean_domain(domain)
    claim, created = DomainClaim.objects.get_or_create(
        artist=artist, domain=host, defaults={"token": secrets.token_urlsafe(24)}
    )
    return claim, created


def domain_claim_verify(
    *, claim: DomainClaim, fetcher: HttpFetcher | None = None, resolver: TxtResolver | None = None
) -> DomainClaim:
    """Look for the token at https://DOMAIN/.well-known/provenant-verify.txt, then in DNS TXT."""
    from optout import verification

    if claim.status == ClaimStatus.VERIFIED:
        return claim
    fetcher = fetcher or verification.fetch_http
    resolver = resolver or verification.resolve_txt
    method, errors = "", []
    try:
        if check_http(claim.domain, claim.token, fetcher):
            method = DomainClaim.Method.HTTP
    except VerificationFailed as exc:
        errors.append(str(exc))
    if not method and check_dns(claim.domain, claim.token, resolver):
        method = DomainClaim.Method.DNS
    if not method:
        claim.last_error = ("; ".join(errors) or "token not found")[:500]
        claim.save(update_fields=["last_error", "updated_at"])
        raise ApplicationError(
            "The verification token was not found.",
            extra={"domain": claim.domain, "errors": errors, "token": claim.token},
        )
    return _domain_claim_mark_verified(claim=claim, method=method)


@transaction.atomic
def _domain_claim_mark_verified(*, claim: DomainClaim, method: str) -> DomainClaim:
    other = DomainClaim.objects.filter(domain=claim.domain, status=ClaimStatus.VERIFIED).exclude(pk=claim.pk)
    if other.exists():
        raise ApplicationError("Another artist has already verified this domain.", status_code=409)
    updated = DomainClaim.objects.filter(pk=claim.pk, status=ClaimStatus.PENDING).update(
        status=ClaimStatus.VERIFIED, method=method, verified_at=timezone.now(), last_error=""
    )
    claim.refresh_from_db()
    if updated:
        audit.append(
            event="claim.domain.verified",
            payload={
                "claim_id": claim.pk,
                "artist_id": claim.artist_id,
                "domain": claim.domain,
                "method": method,
            },
        )
        owned = selectors.assets_under_domain(claim.domain).values_list("pk", flat=True)
        _gate_reapply_for_owner(artist_id=claim.artist_id, asset_ids=owned, hosts=[claim.domain])
        for optout in OptOut.objects.filter(
            artist_id=claim.artist_id, scope=Scope.DOMAIN, domain=claim.domain, status=Status.PENDING
        ):
            _transition(optout=optout, to=Status.ACTIVE, actor=None, note="domain verified")
    return claim


@transaction.atomic
def contributor_claim_create(
    *, artist, contributor_id: int, evidence: str = "", signer_reader=None
) -> tuple[ContributorClaim, bool]:
    """Pending until an operator reviews it, unless a C2PA signer bound to the artist signed the contributor's
    works (then verified at once)."""
    contributor = Contributor.objects.filter(pk=contributor_id).first()
    if contributor is None:
        raise ApplicationError("No such contributor.", status_code=404)
    if ContributorClaim.objects.filter(contributor=contributor, status=ClaimStatus.VERIFIED).exclude(
        artist=artist
    ):
        raise ApplicationError("Another artist has already verified this identity.", status_code=409)
    claim, created = ContributorClaim.objects.get_or_create(
        artist=artist, contributor=contributor, defaults={"evidence": evidence[:5000]}
    )
    if claim.status == ClaimStatus.PENDING and _signed_by_bound_signer(artist, contributor, signer_reader):
        _contributor_claim_set(claim=claim, verified=True, reviewer=None, method=ContributorClaim.Method.C2PA)
    return claim, created


def _signed_by_bound_signer(artist, contributor: Contributor, signer_reader) -> bool:
    signers = set(SignerBinding.objects.filter(artist=artist).values_list("signer", flat=True))
    if not signers:
        return False
    from optout.c2pa_signer import read_signer

    reader = signer_reader or read_signer
    paths = contributor.assets.exclude(local_path="").values_list("local_path", flat=True)[:50]
    return any(reader(path) in signers for path in paths)


@transaction.atomic
def contributor_claim_review(*, claim: ContributorClaim, reviewer, approve: bool) -> ContributorClaim:
    if approve and ContributorClaim.objects.filter(
        contributor_id=claim.contributor_id, status=ClaimStatus.VERIFIED
    ).exclude(pk=claim.pk):
        raise ApplicationError("Another artist has already verified this identity.", status_code=409)
    return _contributor_claim_set(
        claim=claim, verified=approve, reviewer=reviewer, method=ContributorClaim.Method.OPERATOR
    )


def _contributor_claim_set(
    *, claim: ContributorClaim, verified: bool, reviewer, method: str
) -> ContributorClaim:
    to = ClaimStatus.VERIFIED if verified else ClaimStatus.REJECTED
    updated = ContributorClaim.objects.filter(pk=claim.pk, status=ClaimStatus.PENDING).update(
        status=to, method=method, reviewed_by=reviewer, reviewed_at=timezone.now()
    )
    claim.refresh_from_db()
    if not updated:
        return claim  # already reviewed: a replay changes nothing
    audit.append(
        event=f"claim.contributor.{to}",
        payload={"claim_id": claim.pk, "artist_id": claim.artist_id, "contributor_id": claim.contributor_id,
                 "method": method, "reviewer_id": getattr(reviewer, "pk", None)},
    )  # fmt: skip
    if verified:
        owned = Asset.objects.filter(contributor_id=claim.contributor_id).values_list("pk", flat=True)
        _gate_reapply_for_owner(artist_id=claim.artist_id, asset_ids=owned)
    waiting = OptOut.objects.filter(
        artist_id=claim.artist_id, scope=Scope.CONTRIBUTOR, contributor_id=claim.contributor_id,
        status=Status.PENDING,
    )  # fmt: skip
    for optout in waiting:
        _transition(
            optout=optout,
            to=Status.ACTIVE if verified else Status.REJECTED,
            actor=reviewer,
            note="identity verified" if verified else "identity claim rejected",
        )
    return claim


# --- opt-outs ---------------------------------------------------------------------------------------------------


def _gate_reapply_for_owner(*, artist_id: int, asset_ids: Iterable[int], hosts: Iterable[str] = ()) -> None:
    """A claim was just verified: other artists' active opt-outs stop publishing keys over what it owns."""
    for optout_id in gate.optouts_touching(asset_ids=asset_ids, hosts=hosts, artist_id=artist_id):
        optout = OptOut.objects.select_for_update().get(pk=optout_id)
        if optout.status != Status.ACTIVE:
            continue
        coverage, changed = gate.gate_apply(optout=optout, now=timezone.now())
        if changed:
            audit.append(
                event="optout.narrowed",
                payload={"optout_id": optout.pk, "artist_id": optout.artist_id, "owner_id": artist_id,
                         **coverage.summary()},
            )  # fmt: skip
            registry_touch()


def near_copies_of(asset_id: int) -> list[int]:
    """The works the search cascade groups with this one as its copies, nearest first (the bound is
    OPTOUT_NEAR_COPY_REVIEW_MAX; the first OPTOUT_NEAR_COPY_AUTO_MAX go with the work, the rest to review)."""
    from embeddings.search.clusters import confirmed_near_copy_ids

    return confirmed_near_copy_ids(
        asset_id,
        phash_radius=settings.OPTOUT_NEAR_COPY_PHASH_RADIUS,
        limit=settings.OPTOUT_NEAR_COPY_REVIEW_MAX,
    )


def _check_not_owned_by_others(artist, asset_ids: Iterable[int]) -> dict[int, int]:
    owners = selectors.verified_owners(asset_ids)
    return {a: owner for a, owner in owners.items() if owner != artist.pk}


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
    builder = {
        Scope.WORKS: _plan_works,
        Scope.NEAR_COPIES: _plan_near_copies,
        Scope.CONTRIBUTOR: _plan_contributor,
        Scope.DOMAIN: _plan_domain,
    }.get(scope)
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
    others = _check_not_owned_by_others(artist, ids)
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
    if _check_not_owned_by_others(artist, [asset_id]):
        raise ApplicationError("This work is claimed by another verified artist.", status_code=409)
    copies = [int(i) for i in dict.fromkeys(near_copies_of(asset_id)) if int(i) != int(asset_id)]
    # a copy that another verified artist owns stays theirs to decide about
    others = _check_not_owned_by_others(artist, copies)
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
    others = _check_not_owned_by_others(artist, ids)
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
    others = _check_not_owned_by_others(artist, ids)
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
    _history(optout=optout, from_status="", to=Status.PENDING, actor=artist, note="requested")
    if plan["active"]:
        _transition(optout=optout, to=Status.ACTIVE, actor=None, note=plan["note"])
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


def _history(*, optout: OptOut, from_status: str, to: str, actor, note: str) -> OptOutStateChange:
    return OptOutStateChange.objects.create(
        optout=optout, from_status=from_status, to_status=to, at=timezone.now(), actor=actor, note=note[:1000]
    )


ALLOWED_TRANSITIONS = {
    Status.ACTIVE: {Status.PENDING},
    Status.REJECTED: {Status.PENDING},
    Status.REVOKED: {Status.PENDING, Status.ACTIVE},
}


def _gate_at_activation(current: OptOut, note: str) -> tuple[str, str, dict]:
    """(state to move to, note, what the gate left out): activation publishes only what the artist may; an
    opt-out left with nothing to publish because others own all of it is rejected instead."""
    coverage, _changed = gate.gate_apply(optout=current, now=timezone.now())
    summary = coverage.summary()
    if not (coverage.skipped or coverage.colliding_keys or coverage.blocked_hosts):
        return Status.ACTIVE, note, {}
    if not gate.publishes_anything(current):
        return Status.REJECTED, "everything it covers is owned by other verified artists", summary
    left_out = (
        f"{len(coverage.skipped)} works and {len(coverage.blocked_hosts)} hosts of other verified artists"
    )
    return Status.ACTIVE, f"{note}; left out: {left_out}", summary


@transaction.atomic
def _transition(*, optout: OptOut, to: str, actor, note: str) -> bool:
    """Move an opt-out to `to` if its current state allows; False (and nothing written) otherwise. Activation
    passes the ownership gate first, in this transaction, with the opt-out row locked."""
    sources = ALLOWED_TRANSITIONS[to]
    current = OptOut.objects.select_for_update().get(pk=optout.pk)
    if current.status not in sources:
        optout.status = current.status
        return False
    from_status, left_out = current.status, {}
    if to == Status.ACTIVE:
        to, note, left_out = _gate_at_activation(current, note)
    OptOut.objects.filter(pk=optout.pk).update(status=to, updated_at=timezone.now())
    optout.status = to
    keys = OptOutKey.objects.filter(optout=optout)
    (keys.filter(withdrawn_at=None) if to == Status.ACTIVE else keys).update(active=(to == Status.ACTIVE))
    registry_touch()
    change = _history(optout=optout, from_status=from_status, to=to, actor=actor, note=note)
    asset_ids = list(
        OptOutItem.objects.filter(optout=optout, excluded_at=None).values_list("asset_id", flat=True)
    )
    audit.append(
        event="optout.state",
        payload={"optout_id": optout.pk, "artist_id": optout.artist_id, "scope": optout.scope,
                 "from": from_status, "to": to, "actor_id": getattr(actor, "pk", None), "note": note,
                 "asset_count": len(asset_ids), "domain": optout.domain, "at": change.at.isoformat(),
                 **({"left_out": left_out} if left_out else {})},
    )  # fmt: skip
    optout_id = optout.pk
    transaction.on_commit(lambda: notifications.send_state_change(optout_id=optout_id, change_id=change.pk))
    if to == Status.ACTIVE or from_status == Status.ACTIVE:
        signal = optout_signals.optout_activated if to == Status.ACTIVE else optout_signals.optout_revoked
        transaction.on_commit(lambda: signal.send(sender=OptOut, asset_ids=asset_ids, optout_id=optout_id))
    return True


def _refuse_decision(optout: OptOut, verb: str) -> ApplicationError:
    return ApplicationError(
        f"This opt-out is {optout.status}; only a pending one can be {verb}.",
        extra={"status": optout.status},
        status_code=409,
    )


def optout_approve(*, optout: OptOut, operator, note: str = "") -> OptOut:
    """An operator activates a pending request. Chosen works another artist now owns refuse the approval (the
    operator should see that); the other scopes are narrowed by the gate. Approving again is a no-op."""
    with transaction.atomic():
        if optout.scope == Scope.WORKS:
            ids = optout.items.filter(excluded_at=None).values_list("asset_id", flat=True)
            if _check_not_owned_by_others(optout.artist, ids):
                raise ApplicationError(
                    "Some works are now owned by another verified artist.", status_code=409
                )
        moved = _transition(
            optout=optout, to=Status.ACTIVE, actor=operator, note=note or "approved by an operator"
        )
    if not moved and optout.status != Status.ACTIVE:
        raise _refuse_decision(optout, "approved")
    return optout


def optout_reject(*, optout: OptOut, operator, note: str = "") -> OptOut:
    moved = _transition(
        optout=optout, to=Status.REJECTED, actor=operator, note=note or "rejected by an operator"
    )
    if not moved and optout.status != Status.REJECTED:
        raise _refuse_decision(optout, "rejected")
    return optout


def optout_revoke(*, optout: OptOut, artist) -> OptOut:
    """The artist opts back in (or withdraws a pending request). Revoking twice changes nothing."""
    _transition(optout=optout, to=Status.REVOKED, actor=artist, note="revoked by the artist")
    return optout
