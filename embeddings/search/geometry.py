"""Geometric verification: ORB keypoints matched and checked with a RANSAC similarity transform (OpenCV).

A crop, a copy pasted into a bigger canvas or one rotated a little keeps many keypoints of its original in the
same relative layout; an unrelated picture that merely looks alike does not. Keypoints of indexed works are
computed once (at index time, or on first need) and cached on disk, keyed by asset id.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

FEATURE_SIDE = 512  # long side the keypoints are computed at, up or down: every picture at one scale
MAX_KEYPOINTS = 500
# Cached keypoints live under a folder named after this: change it whenever orb_features changes, so that
# `manage.py index` recomputes them all (and rebuilds the keypoint index) instead of mixing two recipes.
FEATURES_VERSION = "orb-v2"


@dataclass(frozen=True)
class Features:
    points: np.ndarray  # (n, 2) float32
    descriptors: np.ndarray  # (n, 32) uint8, ORB


EMPTY = Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))


def feature_image(image: Image.Image) -> Image.Image:
    """Grey, contrast-stretched and scaled to FEATURE_SIDE. Icons are often 60 px and faint line art barely darker
    than its white ground: at their own size and contrast ORB finds no corner at all (FAST needs a 31 px patch
    and a brightness step of 20), so a crop of them could never be verified."""
    from PIL import Image as PILImage
    from PIL import ImageOps

    gray = ImageOps.autocontrast(image.convert("L"), cutoff=0.5)
    scale = FEATURE_SIDE / max(gray.size)
    size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
    return gray.resize(size, PILImage.Resampling.BICUBIC if scale > 1 else PILImage.Resampling.LANCZOS)


def orb_features(image: Image.Image, *, max_keypoints: int = MAX_KEYPOINTS) -> Features:
    import cv2

    gray = feature_image(image)
    orb = cv2.ORB_create(nfeatures=max_keypoints)  # type: ignore[attr-defined]  # absent from cv2's bundled stubs
    keypoints, descriptors = orb.detectAndCompute(np.asarray(gray), None)
    if descriptors is None:
        return EMPTY
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32)
    return Features(points, descriptors)


def features_dir() -> Path:
    from django.conf import settings

    return Path(settings.PROVENANT_INDEX_DIR) / "features" / FEATURES_VERSION


def _cache_path(asset_id: int) -> Path:
    return features_dir() / f"{asset_id // 1000:06d}" / f"{asset_id}.npz"


def save_features(asset_id: int, features: Features) -> None:
    path = _cache_path(asset_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as handle:
        np.savez(handle, points=features.points, descriptors=features.descriptors)
    part.replace(path)


def has_features(asset_id: int) -> bool:
    return _cache_path(asset_id).exists()


def features_written(asset_id: int) -> int | None:
    """The cached feature file's st_mtime_ns, None when the work has none yet."""
    try:
        return _cache_path(asset_id).stat().st_mtime_ns
    except FileNotFoundError:
        return None


def asset_features(asset_id: int, local_path: str) -> Features:
    """Cached keypoints of an indexed work (from the pack when it holds this version of them); computed from its
    pixels on first need."""
    from embeddings.search import feature_pack  # it builds on this module

    written = features_written(asset_id)
    if written is None:
        return _compute_and_save(asset_id, local_path)
    packed = feature_pack.lookup(asset_id, written)
    return packed if packed is not None else _read_features(str(_cache_path(asset_id)), written)


@functools.lru_cache(maxsize=2048)
def _read_features(path: str, written: int) -> Features:
    """Parsing an .npz costs about twenty times reading it, and a search verifies the same popular candidates again and
    again; keyed by the file's mtime, so a rewritten cache file is read afresh. About 20 KB a work."""
    with np.load(path) as data:
        points, descriptors = data["points"], data["descriptors"]
    points.flags.writeable = descriptors.flags.writeable = False  # shared by every caller
    return Features(points, descriptors)


def _compute_and_save(asset_id: int, local_path: str) -> Features:
    from provenance.imaging import ImageRejected, load_rgb_path

    try:
        features = orb_features(load_rgb_path(local_path, max_side=FEATURE_SIDE).image)
    except (ImageRejected, OSError):
        features = EMPTY
    save_features(asset_id, features)
    return features


def ratio_matches(query: np.ndarray, candidate: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, candidate rows) of the query descriptors whose nearest candidate descriptor is clearly nearer
    than the second nearest (Lowe's ratio test). FAISS's binary flat search finds the two nearest twice as fast as
    OpenCV's brute-force matcher; where the two nearest tie, the match is dropped either way, so which of the two
    each library lists first never matters."""
    import faiss

    index = faiss.IndexBinaryFlat(candidate.shape[1] * 8)
    index.add(np.ascontiguousarray(candidate))
    distances, nearest = index.search(np.ascontiguousarray(query), 2)
    rows = np.flatnonzero((nearest[:, 1] >= 0) & (distances[:, 0] < ratio * distances[:, 1]))
    return rows, nearest[rows, 0]


def verify(query: Features, candidate: Features, *, ratio: float = 0.8) -> int:
    """Number of RANSAC inliers of a similarity transform between the two; 0 when there is no consistent one."""
    import cv2

    if len(query.descriptors) < 2 or len(candidate.descriptors) < 2:
        return 0
    query_rows, candidate_rows = ratio_matches(query.descriptors, candidate.descriptors, ratio)
    if len(query_rows) < 6:
        return 0
    src, dst = query.points[query_rows], candidate.points[candidate_rows]
    # a similarity (rotation, scale, shift) rather than a full homography: fewer degrees of freedom, so a
    # handful of chance matches between two unrelated drawings rarely agree on one
    matrix, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=6.0)
    if matrix is None or inliers is None:
        return 0
    scale = float(np.hypot(matrix[0, 0], matrix[0, 1]))
    if not 0.05 < scale < 20:
        return 0
    return int(inliers.sum())
