"""The opt-out registry as of an instant, for manifest builds: every opt-out active at `as_of` (read from the
state history, so a rebuild with the same cut-off gives the same rows) expanded to the concrete keys of the
works it covers, plus a domain key for domain opt-outs."""

from __future__ import annotations

from datetime import datetime

from django.db.models import CharField, F, OuterRef, Q, QuerySet, Subquery, Value
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


def registry_rows(*, as_of: datetime) -> QuerySet:
    """Named rows (kind, key, reason, rule, optout_id), ordered by (opt-out id, kind, key) so that two builds
    write identical output. kind: url | domain | sha256 | phash | asset; key: normalised URL, normalised host,
    lowercase hex sha256, str(int64 pHash), str(asset id). One query with the reason and rule composed by the
    database, so that a manifest build can stream a million keys from its cursor without model instances."""
    scope = F("optout__scope")
    # a key the ownership gate withdrew still counts for an instant before it was withdrawn
    live = Q(withdrawn_at=None) | Q(withdrawn_at__gt=as_of)
    return (
        OptOutKey.objects.filter(live, optout__in=optouts_active_at(as_of).values("pk"))
        .annotate(
            reason=Concat(
                Value("artist opt-out #"),
                Cast("optout_id", CharField()),
                Value(" ("),
                scope,
                Value(")"),
                output_field=CharField(),
            ),
            rule=Concat(Value("optout-"), scope, output_field=CharField()),
        )
        .order_by("optout_id", "kind", "key")
        .values_list("kind", "key", "reason", "rule", "optout_id", named=True)
    )
