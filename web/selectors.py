"""Reads the pages need beyond the apps' own selectors: search hits shaped into cards and near-copy groups,
an artist's opt-outs with history, and the operator dashboard's queues. Apps that may still be missing
(manifest builds, generator) are imported inside guards, so the pages degrade to a "not available" state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Prefetch, QuerySet

from optout import selectors as optout_selectors
from optout.models import ClaimStatus, ContributorClaim, DomainClaim, OptOut, OptOutStateChange
from provenance.models import Asset, Contributor

MATCH_LABELS = {
    "exact": "identical file",
    "hash": "perceptual hash",
    "geometric": "geometric (crop or partial copy)",
    "embedding": "embedding similarity",
    "caption": "title or caption",
    "contributor": "contributor",
    "domain": "domain",
    "url": "URL",
}


@dataclass
class ResultGroup:
    """One near-copy cluster of hits (a single hit when the work has no copies among the results)."""

    cluster: int
    cards: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_group(self) -> bool:
        return len(self.cards) > 1


def result_groups(hits: list) -> list[ResultGroup]:
    """Hits as cards (asset fields, contributor id, a readable match label), grouped by cluster in rank order."""
    from embeddings.selectors import hit_rows

    rows = hit_rows(hits)
    contributor_ids = dict(
        Asset.objects.filter(id__in=[r["asset_id"] for r in rows]).values_list("id", "contributor_id")
    )
    groups: dict[int, ResultGroup] = {}
    for row in rows:
        row["contributor_id"] = contributor_ids.get(row["asset_id"])
        row["match_label"] = MATCH_LABELS.get(row["match"], row["match"])
        key = row["cluster"] if row["cluster"] is not None else row["asset_id"]
        groups.setdefault(key, ResultGroup(cluster=key)).cards.append(row)
    return list(groups.values())


def contributor_detail(*, contributor_id: int) -> Contributor | None:
    return (
        Contributor.objects.prefetch_related("aliases")
        .annotate(asset_count=Count("assets"))
        .filter(pk=contributor_id)
        .first()
    )


def artist_optouts(*, artist) -> QuerySet[OptOut]:
    """The artist's own requests, newest first, with their history and covered works."""
    history = OptOutStateChange.objects.select_related("actor").order_by("at", "id")
    return (
        OptOut.objects.filter(artist=artist)
        .select_related("seed_asset", "contributor")
        .prefetch_related(Prefetch("history", queryset=history))
        .annotate(item_count=Count("items", distinct=True))
        .order_by("-id")
    )


def optout_asset_ids(*, optout: OptOut, limit: int = 12) -> list[int]:
    return optout_selectors.optout_covered_asset_ids(optout=optout, limit=limit)


def review_queue() -> dict[str, Any]:
    pending = (
        OptOut.objects.filter(status=OptOut.Status.PENDING)
        .select_related("artist", "seed_asset", "contributor")
        .annotate(item_count=Count("items", distinct=True))
        .order_by("id")
    )
    claims = ContributorClaim.objects.filter(status=ClaimStatus.PENDING).select_related(
        "artist", "contributor"
    )
    domains = DomainClaim.objects.filter(status=ClaimStatus.PENDING).select_related("artist")
    return {
        "optouts": list(pending[:100]),
        "claims": list(claims[:100]),
        "domain_claims": list(domains[:100]),
    }


def manifest_builds(limit: int = 20) -> list | None:
    """Recent manifest builds, or None when the manifest app is not installed yet."""
    try:
        from training_filter.models import ManifestBuild
    except ImportError:
        return None
    return list(ManifestBuild.objects.order_by("-id")[:limit])


def build_progress_rows(builds: list) -> list[dict[str, Any]]:
    return [
        {
            "id": b.pk,
            "status": b.status,
            "shards_done": b.shards_done,
            "shards_total": b.shards_total,
            "percent": round(100 * b.shards_done / b.shards_total) if b.shards_total else 0,
            "rows_in": b.rows_in,
            "rows_out": b.rows_out,
            "error": (b.error or "")[:300],
        }
        for b in builds
    ]


def generator_models(limit: int = 20) -> list | None:
    """Recent generator models (with staleness), or None when the generator app is not installed yet."""
    try:
        from generator.models import GeneratorModel
    except ImportError:
        return None
    return list(GeneratorModel.objects.order_by("-id")[:limit])
