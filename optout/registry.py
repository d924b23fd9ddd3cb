"""The opt-out registry as of an instant, for manifest builds: every opt-out active at `as_of` (read from the
state history, so a rebuild with the same cut-off gives the same rows) expanded to the concrete keys of the
works it covers, plus a domain key for domain opt-outs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Q, Subquery

from optout.models import OptOut, OptOutKey, OptOutStateChange

KINDS = ("url", "domain", "sha256", "phash", "asset")


@dataclass(frozen=True)
class RegistryRow:
    kind: str  # url | domain | sha256 | phash | asset
    key: str  # normalised URL, normalised host, lowercase hex sha256, str(int64 pHash), str(asset id)
    reason: str
    rule: str
    optout_id: int | None


def optouts_active_at(as_of: datetime) -> list[int]:
    last_state = (
        OptOutStateChange.objects.filter(optout=OuterRef("pk"), at__lte=as_of)
        .order_by("-at", "-id")
        .values("to_status")[:1]
    )
    return list(
        OptOut.objects.annotate(state=Subquery(last_state))
        .filter(state=OptOut.Status.ACTIVE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def registry_rows(*, as_of: datetime) -> Iterator[RegistryRow]:
    """Rows ordered by (opt-out id, kind, key) so that two builds write identical output."""
    ids = optouts_active_at(as_of)
    scopes = dict(OptOut.objects.filter(pk__in=ids).values_list("pk", "scope"))
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        # a key the ownership gate withdrew still counts for an instant before it was withdrawn
        live = Q(withdrawn_at=None) | Q(withdrawn_at__gt=as_of)
        keys = (
            OptOutKey.objects.filter(live, optout_id__in=chunk)
            .order_by("optout_id", "kind", "key")
            .values_list("optout_id", "kind", "key")
        )
        for optout_id, kind, key in keys.iterator(chunk_size=5000):
            yield RegistryRow(
                kind=kind,
                key=key,
                reason=f"artist opt-out #{optout_id} ({scopes[optout_id]})",
                rule=f"optout-{scopes[optout_id]}",
                optout_id=optout_id,
            )
