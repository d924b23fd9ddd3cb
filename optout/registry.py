"""The opt-out registry as of an instant, for manifest builds: every opt-out active at `as_of` (read from the
state history, so a rebuild with the same cut-off gives the same rows) expanded to the concrete keys of the
works it covers, plus a domain key for domain opt-outs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.db.models import CharField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Cast, Concat

from optout.models import OptOut, OptOutKey, OptOutStateChange

KINDS = ("url", "domain", "sha256", "phash", "asset")


def optouts_active_at(as_of: datetime) -> QuerySet:
    last_state = (
        OptOutStateChange.objects.filter(optout=OuterRef("pk"), at__lte=as_of)
        .order_by("-at", "-id")
        .values("to_status")[:1]
    )
    return OptOut.objects.annotate(state=Subquery(last_state)).filter(state=OptOut.Status.ACTIVE)


class RegistryRow(NamedTuple):
    kind: str
    key: str
    reason: str
    rule: str
    optout_id: int


@dataclass(frozen=True)
class Registry:
    """The registry at a cut-off as two queries: `keys` (kind, key, optout_id), a row per key (a million of them),
    and `labels` (optout_id, reason, rule), a row per opt-out. A manifest build streams the keys and attaches the
    labels itself, so the database neither composes nor sends a reason per key (a third of the read). Iterating
    gives the joined rows, ordered by (opt-out id, kind, key)."""

    keys: QuerySet
    labels: QuerySet

    def __iter__(self) -> Iterator[RegistryRow]:
        labels = {pk: (reason, rule) for pk, reason, rule in self.labels}
        for kind, key, optout_id in self.keys.order_by("optout_id", "kind", "key"):
            yield RegistryRow(kind, key, *labels[optout_id], optout_id)


def registry_rows(*, as_of: datetime) -> Registry:
    """Every key in force at `as_of` with its opt-out's reason and rule. kind: url | domain | sha256 | phash |
    asset; key: normalised URL, normalised host, lowercase hex sha256, str(int64 pHash), str(asset id)."""
    active = optouts_active_at(as_of)
    # a key the ownership gate withdrew still counts for an instant before it was withdrawn
    live = Q(withdrawn_at=None) | Q(withdrawn_at__gt=as_of)
    keys = OptOutKey.objects.filter(live, optout__in=active.values("pk"))
    return Registry(
        keys=keys.values_list("kind", "key", "optout_id"),
        # (an opt-out's own `reason` field is the artist's words: the label is named apart from it)
        labels=active.annotate(
            key_reason=Concat(
                Value("artist opt-out #"),
                Cast("pk", CharField()),
                Value(" ("),
                "scope",
                Value(")"),
                output_field=CharField(),
            ),
            key_rule=Concat(Value("optout-"), "scope", output_field=CharField()),
        ).values_list("pk", "key_reason", "key_rule"),
    )
