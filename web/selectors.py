"""Reads the pages need beyond the apps' own selectors: search hits shaped into cards and near-copy groups,
an artist's opt-outs with history, and the operator dashboard's queues and progress rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Prefetch, QuerySet

from embeddings.models import IndexRun
from generator.models import GeneratorModel
from optout import selectors as optout_selectors
from optout.models import ClaimStatus, ContributorClaim, DomainClaim, OptOut, OptOutStateChange
from provenance.models import Asset, Contributor
from training_filter.models import ManifestBuild

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
class ResultTiers:
    """Search results as cards in two tiers: "this is your work" (exact, hash, geometric, an embedding above the
    calibrated threshold, the work's URL or credit) and "might be related" (shown collapsed). `shown` cards of
    each come first; the rest wait behind "more results"."""

    work: list[dict[str, Any]] = field(default_factory=list)
    related: list[dict[str, Any]] = field(default_factory=list)
    shown: int = 24

    @property
    def count(self) -> int:
        return len(self.work) + len(self.related)

    @property
    def work_first(self) -> list[dict[str, Any]]:
        return self.work[: self.shown]

    @property
    def work_more(self) -> list[dict[str, Any]]:
        return self.work[self.shown :]

    @property
    def related_first(self) -> list[dict[str, Any]]:
        return self.related[: max(0, self.shown - len(self.work))]

    @property
    def related_more(self) -> list[dict[str, Any]]:
        return self.related[max(0, self.shown - len(self.work)) :]


def result_tiers(hits: list, *, shown: int) -> ResultTiers:
    """Hits as cards (asset fields, where the work sits, why it matched in words, its near-copy group), split
    into the two tiers in rank order."""
    from embeddings.selectors import hit_rows

    rows = hit_rows(hits)
    contributor_ids = dict(
        Asset.objects.filter(id__in=[r["asset_id"] for r in rows]).values_list("id", "contributor_id")
    )
    cluster_sizes = Counter(r["cluster"] for r in rows if r["cluster"] is not None)
    tiers = ResultTiers(shown=shown)
    for row in rows:
        row["contributor_id"] = contributor_ids.get(row["asset_id"])
        row["match_label"] = MATCH_LABELS.get(row["match"], row["match"])
        row["plain_why"] = plain_why(row["match"], row["why"], row["tier"])
        row["where"] = _where(row)
        row["copies"] = cluster_sizes.get(row["cluster"], 1) - 1
        (tiers.work if row["tier"] == "work" else tiers.related).append(row)
    return tiers


def plain_why(match: str, why: str, tier: str) -> str:
    """Why a result matched, in words an artist reads without knowing what a pHash is (the measured reason
    stays on the card beside it)."""
    region = why.split(" in the picture ", 1)
    inside = f" It was found in the picture {region[1]}." if len(region) == 2 else ""
    sentences = {
        "exact": "The very same file as your picture.",
        "hash": "Looks the same as your picture, resized, re-saved"
        + (", turned or flipped." if "(" in region[0] else " or recoloured."),
        "geometric": "Many details line up with your picture in one layout: a crop of it, or a copy inside it.",
        "caption": "Its title or caption contains your words.",
        "contributor": "Credited to the name you searched for.",
        "domain": "Hosted on the website you searched for.",
        "url": "Found at the address you searched for.",
    }
    if match == "embedding":
        if "text-image" in why:
            text = "Its picture resembles what your words describe."
        elif tier == "work":
            text = "Looks like a copy of your picture (close in what it shows and how)."
        else:
            text = "Looks somewhat like your picture; check whether it is yours."
        if "to a part of the work" in region[0]:
            text = text[:-1] + ", matching a part of the work."
        return text + inside
    return sentences.get(match, why) + inside


def _where(row: dict[str, Any]) -> str:
    """Where the work sits: collection, then its dataset key, its URL or its file."""
    place = row["key"] and f"item {row['key']}" or row["url"] or row["source"]
    return f"{row['collection']} · {place}" if place else row["collection"]


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


def manifest_builds(limit: int = 20) -> list[ManifestBuild]:
    """Recent manifest builds, newest first."""
    return list(ManifestBuild.objects.order_by("-id")[:limit])


# The statuses in which a job still moves: the dashboard polls its progress while any row is in one.
BUILD_ACTIVE = {ManifestBuild.Status.PENDING, ManifestBuild.Status.RUNNING, ManifestBuild.Status.FINALISING}
INDEX_ACTIVE = {IndexRun.Status.PENDING, IndexRun.Status.RUNNING}


def build_progress_rows(builds: list[ManifestBuild]) -> list[dict[str, Any]]:
    """One row per build for the dashboard's poller: `done`/`total` fill the progress bar, `running` says whether
    to poll again, and the `*_text` keys fill the cells of the same name."""
    return [
        {
            "id": b.pk,
            "status": b.status,
            "running": b.status in BUILD_ACTIVE,
            "done": b.shards_done,
            "total": b.shards_total,
            "progress_text": f"{b.shards_done}/{b.shards_total}",
            "rows_text": f"{b.rows_in} → {b.rows_out}",
            "shards_done": b.shards_done,
            "shards_total": b.shards_total,
            "percent": round(100 * b.shards_done / b.shards_total) if b.shards_total else 0,
            "rows_in": b.rows_in,
            "rows_out": b.rows_out,
            "error": (b.error or "")[:300],
        }
        for b in builds
    ]


def generator_models(limit: int = 20) -> list[GeneratorModel]:
    """Recent generator models (with staleness), newest first."""
    return list(GeneratorModel.objects.order_by("-id")[:limit])


def index_runs(limit: int = 10) -> list[IndexRun]:
    """Recent indexing runs, newest first: the whole-work index and the parts embedded in the background."""
    return list(IndexRun.objects.select_related("collection").order_by("-id")[:limit])


def index_progress_rows(runs: list[IndexRun]) -> list[dict[str, Any]]:
    """One row per indexing run for the dashboard's poller, keyed as `build_progress_rows`'s."""
    rows = []
    for run in runs:
        done = min(run.parts_embedded if run.kind == "parts" else run.embedded + run.skipped, run.total)
        percent = round(100 * done / run.total) if run.total else 100
        rows.append(
            {
                "id": run.pk,
                "collection": run.collection.name,
                "kind": run.kind,
                "status": run.status,
                "running": run.status in INDEX_ACTIVE,
                "done": done,
                "total": run.total,
                "percent": percent,
                "progress_text": f"{done}/{run.total} ({percent} %)",
                "parts_embedded": run.parts_embedded,
                "batches": f"{run.batches_done}/{run.batches_total}" if run.batches_total else "",
                "failed": run.failed,
            }
        )
    return rows
