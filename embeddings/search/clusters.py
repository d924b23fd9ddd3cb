"""Near-copy clusters: which hits of one search are copies of each other, and which works are copies of a given
one (opt-out removes a work together with them)."""

from __future__ import annotations

import numpy as np
from django.conf import settings

from embeddings.encoders.factory import get_encoder
from embeddings.search import geometry, index
from embeddings.search.hits import Hit
from embeddings.search.stores import hash_table, vector_store
from embeddings.search.verification import Check, verify_candidates
from provenance import hashing
from provenance.models import Asset


def assign_clusters(hits: list[Hit]) -> None:
    """Union hits that are near-copies of each other (pHash within radius or cosine >= threshold)."""
    if not hits:
        return
    ids = [h.asset_id for h in hits]
    parent = list(range(len(hits)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in _near_copy_pairs(ids):
        parent[find(j)] = find(i)
    for i, hit in enumerate(hits):
        hit.cluster = ids[find(i)]  # hits are ranked, so the root is the best-ranked member seen first


def _near_copy_pairs(ids: list[int]) -> list[tuple[int, int]]:
    rows = Asset.objects.filter(id__in=ids, phash__isnull=False).values_list("id", "phash")
    phashes = {asset_id: phash for asset_id, phash in rows if phash is not None}
    vectors = vector_store().get(ids)
    pairs = []
    for i in range(len(ids)):
        for j in range(i + 1, len(ids)):
            a, b = ids[i], ids[j]
            close_hash = (
                a in phashes
                and b in phashes
                and hashing.phash_distance(phashes[a], phashes[b]) <= settings.PROVENANT_PHASH_RADIUS
            )
            close_vec = (
                a in vectors
                and b in vectors
                and float(vectors[a] @ vectors[b]) >= (settings.PROVENANT_NEAR_COPY_COSINE)
            )
            if close_hash or close_vec:
                pairs.append((i, j))
    return pairs


def near_copy_ids(asset_id: int) -> list[int]:
    """The asset and every indexed near-copy of it (pHash within radius, or cosine >= the near-copy threshold).

    Used by opt-out to remove a work together with its re-hosted copies.
    """
    found = {asset_id}
    phash = Asset.objects.filter(id=asset_id).values_list("phash", flat=True).first()
    if phash is not None:
        table = hash_table()
        close = (
            hashing.phash_distances(phash, table.phash) <= settings.PROVENANT_PHASH_RADIUS
        ) & table.has_phash
        found.update(int(i) for i in table.ids[close])
    vector = vector_store().get([asset_id]).get(asset_id)
    if vector is not None:
        scores, ids = index.search_vectors(
            get_encoder().space,
            vector[None, :],
            settings.PROVENANT_NEAR_COPY_MAX,
            nprobe=settings.PROVENANT_IVF_NPROBE,
        )
        found.update(
            int(i)
            for s, i in zip(scores[0], ids[0], strict=True)
            if i >= 0 and s >= settings.PROVENANT_NEAR_COPY_COSINE
        )
    return sorted(found)


def confirmed_near_copy_ids(asset_id: int, *, phash_radius: int, limit: int) -> list[int]:
    """The works the cascade would group with `asset_id` as copies of it, nearest first, at most `limit` (the
    asset itself excluded): the same bytes, or a candidate (pHash within `phash_radius`, or an embedding neighbour
    at cosine >= PROVENANT_NEAR_COPY_COSINE) that geometric verification against the asset confirms. Where there
    are no pixels to verify, a pHash neighbour counts alone, and only an informative pHash (a flat image's says
    nothing: 123 unrelated fixture drawings share one).

    Used by opt-out, where a copy is removed on its owner's word alone: only agreement the cascade itself shows
    (pHash alone at 8 bits grouped unrelated fixture works by many contributors)."""
    seed = Asset.objects.filter(id=asset_id).values("phash", "sha256", "local_path").first()
    if seed is None:
        return []
    ranked: dict[int, float] = {}  # asset id -> rank, lower is nearer (0: identical bytes)
    if seed["sha256"]:
        ranked.update(
            (int(i), 0.0) for i in Asset.objects.filter(sha256=seed["sha256"]).values_list("id", flat=True)
        )
    by_phash = _phash_candidates(seed["phash"], phash_radius, limit)
    by_embedding = _embedding_candidates(asset_id)
    candidates = [i for i in dict.fromkeys([*by_phash, *by_embedding]) if i not in ranked and i != asset_id]
    with_pixels = _with_pixels(candidates) if seed["local_path"] else set()
    verified = _geometric_agreement(asset_id, seed["local_path"], [i for i in candidates if i in with_pixels])
    for i in candidates:
        if i in verified:
            ranked[i] = 1.0 - verified[i]
        elif i in by_phash and i not in with_pixels:
            ranked[i] = 1.0 + by_phash[i]
    ranked.pop(asset_id, None)
    return sorted(ranked, key=lambda i: (ranked[i], i))[:limit]


def _phash_candidates(phash: int | None, radius: int, limit: int) -> dict[int, int]:
    """{asset id: pHash distance} of the nearest works within `radius`, for an informative pHash only."""
    if phash is None or not hashing.phash_is_informative(phash):
        return {}
    table = hash_table()
    dist = hashing.phash_distances(phash, table.phash)
    close = np.flatnonzero((dist <= radius) & table.has_phash)
    close = close[np.argsort(dist[close], kind="stable")][: 3 * limit]
    return {int(table.ids[i]): int(dist[i]) for i in close}


def _embedding_candidates(asset_id: int) -> list[int]:
    vector = vector_store().get([asset_id]).get(asset_id)
    if vector is None:
        return []
    scores, ids = index.search_vectors(
        get_encoder().space,
        vector[None, :],
        settings.PROVENANT_NEAR_COPY_MAX,
        nprobe=settings.PROVENANT_IVF_NPROBE,
    )
    return [
        int(i)
        for s, i in zip(scores[0], ids[0], strict=True)
        if i >= 0 and s >= settings.PROVENANT_NEAR_COPY_COSINE
    ]


def _with_pixels(asset_ids: list[int]) -> set[int]:
    return set(Asset.objects.filter(id__in=asset_ids).exclude(local_path="").values_list("id", flat=True))


def _geometric_agreement(asset_id: int, local_path: str, candidates: list[int]) -> dict[int, float]:
    """{candidate: inlier score} of the candidates whose keypoints agree with the asset's on one transform."""
    if not local_path or not candidates:
        return {}
    check = Check("", geometry.asset_features(asset_id, local_path), candidates)
    return {hit.asset_id: hit.score for hit in verify_candidates([check], "")}
