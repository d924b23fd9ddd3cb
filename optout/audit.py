"""Hash-chained audit log: append under a lock on the chain head, verify by recomputing every hash.

Each row's hash covers the previous row's hash and a canonical JSON form of the row (sorted keys, no spaces,
UTF-8), so editing any row breaks its own hash and deleting one breaks the next row's link (or the head).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from optout.models import AuditEntry, AuditHead

GENESIS_HASH = "0" * 64


def canonical_json(data: Any) -> bytes:
    # orjson's sorted keys + compact separators are stable across runs; a round trip through JSON first makes
    # what we hash the same as what the JSON column stores (tuples become lists, etc.)
    return orjson.dumps(orjson.loads(orjson.dumps(data)), option=orjson.OPT_SORT_KEYS)


def entry_hash(*, prev_hash: str, seq: int, event: str, payload: dict, created_at: str) -> str:
    body = canonical_json({"seq": seq, "event": event, "payload": payload, "created_at": created_at})
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def _timestamp(value) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append(*, event: str, payload: dict) -> AuditEntry:
    """Append one row. The head row lock serialises writers: two transactions never read the same head."""
    payload = orjson.loads(orjson.dumps(payload))
    with transaction.atomic():
        AuditHead.objects.get_or_create(pk=1)
        head = AuditHead.objects.select_for_update().get(pk=1)
        seq = head.seq + 1
        created = timezone.now()
        digest = entry_hash(
            prev_hash=head.hash, seq=seq, event=event, payload=payload, created_at=_timestamp(created)
        )
        entry = AuditEntry.objects.create(
            seq=seq, event=event, payload=payload, created_at=created, prev_hash=head.hash, hash=digest
        )
        head.seq, head.hash = seq, digest
        head.save(update_fields=["seq", "hash"])
    return entry


@dataclass(frozen=True)
class AuditProblem:
    seq: int
    kind: str  # "edited", "missing", "broken-link"
    detail: str


def verify(batch_size: int = 5000) -> tuple[int, AuditProblem | None]:
    """(rows checked, first problem or None). Streams the log in seq order."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    rows = AuditEntry.objects.order_by("seq").values_list(
        "seq", "event", "payload", "created_at", "prev_hash", "hash"
    )
    for seq, event, payload, created_at, stored_prev, stored_hash in rows.iterator(chunk_size=batch_size):
        if seq != expected_seq:
            return checked, AuditProblem(
                expected_seq, "missing", f"row {expected_seq} is missing (next is {seq})"
            )
        if stored_prev != prev_hash:
            return checked, AuditProblem(seq, "broken-link", f"row {seq} does not link to row {seq - 1}")
        digest = entry_hash(
            prev_hash=prev_hash, seq=seq, event=event, payload=payload, created_at=_timestamp(created_at)
        )
        if digest != stored_hash:
            return checked, AuditProblem(
                seq, "edited", f"row {seq} was edited (hash does not match its content)"
            )
        prev_hash, expected_seq, checked = stored_hash, seq + 1, checked + 1
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != expected_seq - 1 or head.hash != prev_hash):
        return checked, AuditProblem(
            expected_seq,
            "missing",
            f"the chain head is row {head.seq} but the log ends at row {expected_seq - 1}",
        )
    return checked, None
