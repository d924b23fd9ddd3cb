"""Geometric verification: a candidate matches where enough ORB keypoints agree on one similarity transform."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from embeddings.search import geometry
from embeddings.search.hits import Hit
from provenance.models import Asset


@dataclass(frozen=True)
class Check:
    """One orientation of the query ("" or " (mirrored)", said in the reason) and the works to verify it against."""

    label: str
    features: geometry.Features
    candidate_ids: list[int]


def inlier_score(inliers: int) -> float:
    """In [0, 1), rising with every inlier: a capped score would tie a 130- and a 185-inlier match."""
    return round(inliers / (inliers + 25), 4)


def verify_candidates(checks: list[Check], where: str) -> list[Hit]:
    """A hit for each work that enough keypoints of some check's orientation agree with, its best orientation's."""
    wanted = list(dict.fromkeys(asset_id for check in checks for asset_id in check.candidate_ids))
    paths = dict(Asset.objects.filter(id__in=wanted).values_list("id", "local_path"))
    best: dict[int, tuple[int, str]] = {}
    for check in checks:
        for asset_id in check.candidate_ids:
            if paths.get(asset_id):
                found = (
                    geometry.verify(check.features, geometry.asset_features(asset_id, paths[asset_id])),
                    check.label,
                )
                best[asset_id] = max(best.get(asset_id, found), found)
    minimum = settings.PROVENANT_GEOMETRIC_MIN_INLIERS
    hits = []
    for asset_id in wanted:
        inliers, label = best.get(asset_id, (0, ""))
        if inliers >= minimum:
            why = f"{inliers} ORB keypoints agree on one similarity transform{label}{where}"
            hits.append(Hit(asset_id, inlier_score(inliers), "geometric", why, details={"inliers": inliers}))
    return hits
