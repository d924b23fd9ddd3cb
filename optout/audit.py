"""Keyed, hash-chained audit log: append under a lock on the chain head; verify every row, the head, and any
published anchor.

Each row's hash is HMAC-SHA256, keyed with a secret kept outside the database (PROVENANT_AUDIT_KEY or the key
file), over the previous row's hash and a canonical JSON form of the row (sorted keys, no spaces, UTF-8). Someone
with write access to the database but not the key can edit, delete or rewrite rows, but cannot make the hashes
agree again. Cutting the tail and rewinding the head leaves a consistent shorter chain: an anchor (the head's seq
and hash, printed by `manage.py audit_anchor` and published elsewhere) is what catches that.

Rows written before the key existed carry key_id '' and a plain SHA-256; `manage.py audit_rekey` re-hashes them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from optout.models import AuditEntry, AuditHead

GENESIS_HASH = "0" * 64
LEGACY_KEY_ID = ""  # rows hashed with plain SHA-256, before the log was keyed


def canonical_json(data: Any) -> bytes:
    # orjson's sorted keys + compact separators are stable across runs; a round trip through JSON first makes
    # what we hash the same as what the JSON column stores (tuples become lists, etc.)
    return orjson.dumps(orjson.loads(orjson.dumps(data)), option=orjson.OPT_SORT_KEYS)


# --- the key ------------------------------------------------------------------------------------------------------


def _read_or_create_key_file(path: Path, create: bool) -> bytes:
    try:
        return path.read_text().strip().encode()
    except FileNotFoundError:
        if not create:
            raise ImproperlyConfigured(
                f"No audit key: set PROVENANT_AUDIT_KEY or put one in {path} (PROVENANT_AUDIT_KEY_FILE)."
            ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_EXCL: of two processes starting at once, one writes the key and the other reads it
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip().encode()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path.read_text().strip().encode()


def audit_key() -> bytes:
    if settings.PROVENANT_AUDIT_KEY:
        return settings.PROVENANT_AUDIT_KEY.encode()
    return _read_or_create_key_file(
        Path(settings.PROVENANT_AUDIT_KEY_FILE), settings.PROVENANT_AUDIT_KEY_CREATE
    )


def key_id(key: bytes) -> str:
    """A public name for the key (rows record it), from which the key cannot be recovered."""
    return hmac.new(key, b"provenant-audit-key-id", hashlib.sha256).hexdigest()[:16]


# --- hashing ------------------------------------------------------------------------------------------------------


def _body(*, seq: int, event: str, payload: dict, created_at: str) -> bytes:
    return canonical_json({"seq": seq, "event": event, "payload": payload, "created_at": created_at})


def entry_hash(
    *, key: bytes | None, prev_hash: str, seq: int, event: str, payload: dict, created_at: str
) -> str:
    """HMAC-SHA256 under `key`; plain SHA-256 for a legacy row (key None)."""
    message = prev_hash.encode("ascii") + _body(seq=seq, event=event, payload=payload, created_at=created_at)
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _timestamp(value) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hold_chain() -> None:
    """Take the chain head's lock now, until this transaction ends. Writers that change the registry take their
    locks in one order, the chain head first, then opt-out rows, then the registry clock; a writer that appended
    to the log after locking rows could otherwise wait on one that holds the head and waits on those rows."""
    AuditHead.objects.get_or_create(pk=1)
    AuditHead.objects.select_for_update().get(pk=1)


def append(*, event: str, payload: dict) -> AuditEntry:
    """Append one row. The head row lock serialises writers: two transactions never read the same head."""
    payload = orjson.loads(orjson.dumps(payload))
    key = audit_key()
    with transaction.atomic():
        hold_chain()
        head = AuditHead.objects.get(pk=1)
        seq, created = head.seq + 1, timezone.now()
        digest = entry_hash(
            key=key,
            prev_hash=head.hash,
            seq=seq,
            event=event,
            payload=payload,
            created_at=_timestamp(created),
        )
        entry = AuditEntry.objects.create(
            seq=seq, event=event, payload=payload, created_at=created, prev_hash=head.hash, hash=digest,
            key_id=key_id(key),
        )  # fmt: skip
        head.seq, head.hash = seq, digest
        head.save(update_fields=["seq", "hash"])
    return entry


# --- anchors ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str

    def __str__(self) -> str:
        return f"provenant-audit-anchor seq={self.seq} hash={self.hash}"


_ANCHOR = re.compile(r"(?:seq=)?(?P<seq>\d+)(?:\s+hash=|:)(?P<hash>[0-9a-f]{64})")


def parse_anchor(text: str) -> Anchor:
    """`provenant-audit-anchor seq=N hash=H` (what audit_anchor prints) or `N:H`."""
    found = _ANCHOR.search(text.strip())
    if found is None:
        raise ValueError(
            f"not an audit anchor: {text.strip()[:100]!r} (expected 'seq=N hash=<64 hex>' or 'N:<hash>')"
        )
    return Anchor(int(found["seq"]), found["hash"])


def current_anchor() -> Anchor:
    head = AuditHead.objects.filter(pk=1).first()
    return Anchor(head.seq, head.hash) if head else Anchor(0, GENESIS_HASH)


# --- verification -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditProblem:
    seq: int
    kind: str  # edited, deleted, broken-link, truncated, rewritten, anchor-mismatch, unkeyed, head-mismatch
    detail: str

    def __str__(self) -> str:
        return f"row {self.seq} ({self.kind}): {self.detail}"


@dataclass
class AuditReport:
    checked: int = 0
    problems: list[AuditProblem] = field(default_factory=list)
    last_seq: int = 0
    last_hash: str = GENESIS_HASH


_FIELDS = ("seq", "event", "payload", "created_at", "prev_hash", "hash", "key_id")


def _rows(batch_size: int) -> Iterator[tuple]:
    return AuditEntry.objects.order_by("seq").values_list(*_FIELDS).iterator(chunk_size=batch_size)


def _row_hash(row: tuple, key: bytes, prev_hash: str) -> str:
    seq, event, payload, created_at, _prev, _hash, row_key_id = row
    return entry_hash(
        key=None if row_key_id == LEGACY_KEY_ID else key,
        prev_hash=prev_hash, seq=seq, event=event, payload=payload, created_at=_timestamp(created_at),
    )  # fmt: skip


def verify(*, anchors: Sequence[Anchor] = (), batch_size: int = 5000) -> AuditReport:
    """Check every row's keyed hash and link, the head, and each anchor; report every problem found."""
    key = audit_key()
    report, edited, unkeyed, anchor_hashes = AuditReport(), [], [], {}
    wanted = {a.seq for a in anchors}
    for row in _rows(batch_size):
        seq, stored_prev, stored_hash, row_key_id = row[0], row[4], row[5], row[6]
        if seq != report.last_seq + 1:
            gap = f"{report.last_seq + 1}" + (f"-{seq - 1}" if seq - 1 > report.last_seq + 1 else "")
            report.problems.append(AuditProblem(report.last_seq + 1, "deleted", f"row(s) {gap} are missing"))
        elif stored_prev != report.last_hash:
            report.problems.append(
                AuditProblem(seq, "broken-link", f"row {seq} does not link to row {seq - 1}")
            )
        if row_key_id == LEGACY_KEY_ID:
            unkeyed.append(seq)
        if _row_hash(row, key, stored_prev) != stored_hash:
            edited.append(seq)
        if seq in wanted:
            anchor_hashes[seq] = stored_hash
        report.checked, report.last_seq, report.last_hash = report.checked + 1, seq, stored_hash
    report.problems.extend(_hash_problems(report.checked, edited, unkeyed))
    report.problems.extend(_head_problems(report))
    report.problems.extend(_anchor_problems(report, anchors, anchor_hashes))
    return report


def _hash_problems(checked: int, edited: list[int], unkeyed: list[int]) -> list[AuditProblem]:
    problems = []
    if checked and len(edited) == checked:
        problems.append(AuditProblem(edited[0], "rewritten", (
            "no row carries a valid keyed hash: the log was rewritten without the audit key, or "
            "PROVENANT_AUDIT_KEY is not the key it was written with"
        )))  # fmt: skip
    else:
        problems += [
            AuditProblem(seq, "edited", f"row {seq} was edited (its hash does not match its content)")
            for seq in edited[:20]
        ]
    if unkeyed:
        problems.append(AuditProblem(unkeyed[0], "unkeyed", (
            f"{len(unkeyed)} row(s) carry an unkeyed SHA-256 (written before the audit key, or forged to look so):"
            " run `manage.py audit_rekey` once after upgrading"
        )))  # fmt: skip
    return problems


def _head_problems(report: AuditReport) -> list[AuditProblem]:
    head = AuditHead.objects.filter(pk=1).first()
    if head is None:
        if report.checked:
            return [AuditProblem(report.last_seq, "head-mismatch", "the chain head row is missing")]
        return []
    if head.seq > report.last_seq:
        detail = (
            f"the chain head is row {head.seq} but the log ends at row {report.last_seq}: the tail was cut"
        )
        return [AuditProblem(report.last_seq + 1, "truncated", detail)]
    if head.seq != report.last_seq or head.hash != report.last_hash:
        detail = f"the chain head (row {head.seq}) does not match the last row ({report.last_seq})"
        return [AuditProblem(report.last_seq, "head-mismatch", detail)]
    return []


def _anchor_problems(
    report: AuditReport, anchors: Sequence[Anchor], found: dict[int, str]
) -> list[AuditProblem]:
    problems = []
    for anchor in anchors:
        if anchor.seq == 0:
            continue
        if anchor.seq > report.last_seq:
            detail = f"an anchor was published at row {anchor.seq} but the log ends at row {report.last_seq}"
            problems.append(AuditProblem(anchor.seq, "truncated", detail))
        elif found.get(anchor.seq) != anchor.hash:
            detail = f"row {anchor.seq} does not carry the published anchor's hash: the log was rewritten"
            problems.append(AuditProblem(anchor.seq, "anchor-mismatch", detail))
    return problems


# --- re-keying legacy rows ----------------------------------------------------------------------------------------


def rekey_legacy_rows() -> tuple[int, str]:
    """Re-hash the whole chain under the audit key, after checking every row under the scheme it was written with
    (and the head); refuses if anything is broken or if there is nothing unkeyed. (rows re-hashed, old head)."""
    key = audit_key()
    with transaction.atomic():
        hold_chain()
        head = AuditHead.objects.get(pk=1)
        if not AuditEntry.objects.filter(key_id=LEGACY_KEY_ID).exists():
            raise ValueError("no unkeyed rows: nothing to re-key")
        report = verify()
        broken = [p for p in report.problems if p.kind != "unkeyed"]
        if broken:
            raise ValueError(f"refusing to re-key a broken log: {broken[0]}")
        old_head, prev, count = head.hash, GENESIS_HASH, 0
        for row in list(_rows(5000)):
            digest = _row_hash((*row[:6], key_id(key)), key, prev)
            AuditEntry.objects.filter(seq=row[0]).update(prev_hash=prev, hash=digest, key_id=key_id(key))
            prev, count = digest, count + 1
        head.hash = prev
        head.save(update_fields=["hash"])
    append(event="audit.rekeyed", payload={"rows": count, "legacy_head": old_head})
    return count, old_head
