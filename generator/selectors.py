"""Reads: the current model, images, the ledger, and contributor-share reports computed from the ledger."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from django.db.models import QuerySet

from generator.models import AttributionRecord, GeneratedImage, GeneratorModel


def generator_model_current() -> GeneratorModel | None:
    """The newest finished model (ready or stale): a stale newest model is refused, not silently skipped."""
    return (
        GeneratorModel.objects.filter(status__in=[GeneratorModel.Status.READY, GeneratorModel.Status.STALE])
        .order_by("-trained_at", "-id")
        .first()
    )


def generated_image_list(*, user=None) -> QuerySet[GeneratedImage]:
    qs = GeneratedImage.objects.select_related("model").prefetch_related("attributions")
    return qs if user is None else qs.filter(created_by=user)


def attribution_records(*, start: dt.datetime | None, end: dt.datetime | None, method: str) -> QuerySet:
    qs = AttributionRecord.objects.filter(method=method)
    if start is not None:
        qs = qs.filter(image__created_at__gte=start)
    if end is not None:
        qs = qs.filter(image__created_at__lt=end)
    return qs


@dataclass
class ReportRow:
    contributor: str
    total_share: float
    generations: int
    payout: Decimal


@dataclass
class ShareReport:
    method: str
    label: str  # "influence" or "similarity": never call a similarity share influence
    start: dt.datetime | None
    end: dt.datetime | None
    pool: Decimal
    images: int
    rows: list[ReportRow]

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "label": self.label,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "pool": str(self.pool),
            "images": self.images,
            "rows": [
                {
                    "contributor": r.contributor,
                    "total_share": r.total_share,
                    "generations": r.generations,
                    "payout": str(r.payout),
                }
                for r in self.rows
            ],
        }


def contributor_share_report(
    *, start: dt.datetime | None, end: dt.datetime | None, method: str, pool: Decimal
) -> ShareReport:
    """Per contributor: the sum of its ledger shares, the images it has a share in, and its part of the pool
    (pool x total share / images). "others" is the ledger's own bucket of small shares, reported as such."""
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    images = 0
    for shares in attribution_records(start=start, end=end, method=method).values_list("shares", flat=True):
        images += 1
        for name, share in shares.items():
            totals[name] = totals.get(name, 0.0) + float(share)
            counts[name] = counts.get(name, 0) + (1 if share > 0 else 0)
    cent = Decimal("0.01")
    rows = [
        ReportRow(
            name,
            total,
            counts[name],
            (pool * Decimal(repr(total)) / images).quantize(cent, ROUND_HALF_EVEN) if images else Decimal(0),
        )
        for name, total in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    label = "influence" if method == AttributionRecord.Method.GRADIENT else "similarity"
    return ShareReport(method, label, start, end, pool, images, rows)
