"""Claims of ownership: a domain (verified by a token over HTTP or DNS) or a contributor identity (reviewed by an
operator, or proven by a C2PA signature from a bound signer). A verified claim activates the artist's opt-outs it
allows and narrows other artists' opt-outs over what it owns (optout.services.transitions)."""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone

from core.exceptions import ApplicationError
from optout import audit, selectors
from optout.domains import clean_domain
from optout.models import ClaimStatus, ContributorClaim, DomainClaim, OptOut, SignerBinding
from optout.services.transitions import optout_gate_reapply, optout_transition
from optout.verification import HttpFetcher, TxtResolver, VerificationFailed, check_dns, check_http
from provenance.models import Asset, Contributor

Status = OptOut.Status
Scope = OptOut.Scope


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
        optout_gate_reapply(artist_id=claim.artist_id, asset_ids=owned, hosts=[claim.domain])
        for optout in OptOut.objects.filter(
            artist_id=claim.artist_id, scope=Scope.DOMAIN, domain=claim.domain, status=Status.PENDING
        ):
            optout_transition(optout=optout, to=Status.ACTIVE, actor=None, note="domain verified")
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
        optout_gate_reapply(artist_id=claim.artist_id, asset_ids=owned)
    waiting = OptOut.objects.filter(
        artist_id=claim.artist_id, scope=Scope.CONTRIBUTOR, contributor_id=claim.contributor_id,
        status=Status.PENDING,
    )  # fmt: skip
    for optout in waiting:
        optout_transition(
            optout=optout,
            to=Status.ACTIVE if verified else Status.REJECTED,
            actor=reviewer,
            note="identity verified" if verified else "identity claim rejected",
        )
    return claim
