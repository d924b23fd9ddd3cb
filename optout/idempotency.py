"""Idempotency-Key for opt-out creation. The key is stored as its SHA-256, so keys of any length are compared
whole, next to a fingerprint of the request it was first used with: a replay of the same request returns the
first opt-out, while the same key with another request is refused (422) instead of silently answering with an
opt-out that does not cover what was asked."""

from __future__ import annotations

import hashlib

import orjson

from core.exceptions import ApplicationError
from optout.models import OptOut


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def request_fingerprint(*, scope: str, asset_ids, asset_id, contributor_id, domain: str, reason: str) -> str:
    fields = {
        "scope": scope,
        "asset_ids": sorted({int(i) for i in asset_ids or []}),
        "asset_id": asset_id,
        "contributor_id": contributor_id,
        "domain": (domain or "").strip().lower(),
        "reason": reason or "",
    }
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def replay_of(*, artist, digest: str, fingerprint: str) -> OptOut | None:
    """The opt-out this key already made, or None; 422 when it was made for another request."""
    existing = OptOut.objects.filter(artist=artist, idempotency_key=digest).first()
    if existing is None:
        return None
    # rows from before fingerprints were stored have none: those replays are taken on trust, as they were
    if existing.idempotency_fingerprint and existing.idempotency_fingerprint != fingerprint:
        raise ApplicationError(
            "This Idempotency-Key was already used for a different request; use a new key for a new request.",
            extra={"optout_id": existing.pk},
            status_code=422,
        )
    return existing
