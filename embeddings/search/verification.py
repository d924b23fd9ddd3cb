"""Geometric verification: a candidate matches where enough ORB keypoints agree on one similarity transform."""

from __future__ import annotations

from django.conf import settings

from embeddings.search import geometry
from embeddings.search.hits import Hit
from provenance.models import Asset


def inlier_score(inliers: int) -> float:
    """In [0, 1), rising with every inlier: a capped score would tie a 130- and a 185-inlier match."""
    return round(inliers / (inliers + 25), 4)


def verify_candidates(
    orientations: list[tuple[str, geometry.Features]], candidate_ids: list[int], where: str
) -> list[Hit]:
    paths = dict(Asset.objects.filter(id__in=candidate_ids).values_list("id", "local_path"))
    minimum = settings.PROVENANT_GEOMETRIC_MIN_INLIERS
    hits = []
    for asset_id in candidate_ids:
        if not paths.get(asset_id):
            continue
        candidate = geometry.asset_features(asset_id, paths[asset_id])
        inliers, label = max((geometry.verify(query, candidate), label) for label, query in orientations)
        if inliers >= minimum:
            why = f"{inliers} ORB keypoints agree on one similarity transform{label}{where}"
            hits.append(Hit(asset_id, inlier_score(inliers), "geometric", why, details={"inliers": inliers}))
    return hits
