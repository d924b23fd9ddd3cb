"""What a search returns: a hit with the stage that found it and why, ranked by the stage's tier, then by score."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings

MATCH_TIERS = {
    "exact": 5,
    "hash": 4,
    "geometric": 3,
    "caption": 2,
    "embedding": 1,
    "contributor": 1,
    "domain": 1,
    "url": 2,
}


@dataclass
class Hit:
    asset_id: int
    score: float
    match: str  # exact | hash | geometric | embedding (image search); caption, contributor, domain, url
    why: str
    cluster: int | None = None  # asset id of the best-ranked member of this hit's near-duplicate cluster
    opted_out: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rank_key(self) -> tuple[int, float]:
        return MATCH_TIERS.get(self.match, 0), self.score

    @property
    def tier(self) -> str:
        """ "work" when the match shows the work itself (the file, its hashes, its keypoints in one layout, an
        embedding close enough to be a copy, its URL or its credit), else "related"."""
        if self.match == "embedding":
            confident = (
                self.score >= settings.PROVENANT_SEARCH_CONFIDENT_COSINE and "text-image" not in self.why
            )
            return "work" if confident else "related"
        return "related" if self.match in ("caption", "domain") else "work"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("details")
        data["tier"] = self.tier
        return data


def keep_better(hits: dict[int, Hit], hit: Hit) -> None:
    """Keep the higher-ranked of `hit` and the hit already held for its work, with both hits' details."""
    current = hits.get(hit.asset_id)
    if current is None or hit.rank_key > current.rank_key:
        if current is not None:
            hit.details = {**current.details, **hit.details}
        hits[hit.asset_id] = hit
    else:
        current.details.update(hit.details)


def diversify(ranked: list[Hit], top_k: int, per_cluster: int) -> list[Hit]:
    """The top_k hits with at most per_cluster members of one near-copy cluster ahead of any other work; the
    cluster's further members fill the places left, in rank order. A query holding one drawing of a series of
    near-identical ones (star polygons, a flag's variants) matches the whole series, which would push a second
    picture in the query, or a weaker true match, off the page."""
    taken: dict[int, int] = {}
    first: list[Hit] = []
    later: list[Hit] = []
    for hit in ranked:
        key = hit.cluster if hit.cluster is not None else hit.asset_id
        (first if taken.get(key, 0) < per_cluster else later).append(hit)
        taken[key] = taken.get(key, 0) + 1
    return (first + later)[:top_k]
