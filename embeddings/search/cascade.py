"""Find a work by image: a cascade of exact bytes, perceptual hashes, embedding kNN and geometric verification.

Each stage catches what the previous one misses: sha256 only the identical file, pHash/PDQ and grey thumbnails
re-encodes, resizes and (mirrored too) flips; the embedding finds edits that move every pixel (colour shifts,
overlays, rotations), and the embeddings of fixed parts of every work find crops; ORB + RANSAC confirms crops and
copies pasted into a larger picture, which the whole-image embedding ranks too low. Hits are grouped into
near-duplicate clusters and say why they matched.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import itertools
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from django.conf import settings

from core.exceptions import ImageUnreadable, PayloadTooLarge
from core.exclusions import collect_exclusions
from embeddings.encoders.factory import get_encoder
from embeddings.search import geometry, index, parts, regions, thumbnails
from embeddings.search.clusters import assign_clusters
from embeddings.search.hits import Hit, diversify, keep_better
from embeddings.search.stores import hash_table, one_hash_table
from embeddings.search.verification import Check, verify_candidates
from provenance import hashing
from provenance.models import Asset

if TYPE_CHECKING:
    from PIL import Image

T = TypeVar("T")

QUERY_KEYPOINTS = 1000  # more than indexed works keep: a query may hold several pictures
THUMBNAIL_NEIGHBOURS = 10  # per query view


def _hash_hits(
    image: Image.Image, hidden: frozenset[int], *, mirrored: bool = True
) -> tuple[list[Hit], list[Hit]]:
    """Hash matches of the query as it is (or mirrored), and those found only by turning, flipping or inverting
    it, which the cascade keeps only when the embedding stage agrees. `mirrored` False hashes no mirror image
    (a region of a query: the thumbnail's orientations, which cost nothing, still include it)."""
    as_is: dict[int, Hit] = {}
    turned: dict[int, Hit] = {}
    for hit, upright in _thumbnail_hits(image, hidden):
        keep_better(as_is if upright else turned, hit)
    _add_phash_and_pdq_hits(image, as_is, turned, mirrored)
    visible = [h for h in as_is.values() if h.asset_id not in hidden]
    return visible, [h for h in turned.values() if h.asset_id not in hidden and h.asset_id not in as_is]


def _add_phash_and_pdq_hits(
    image: Image.Image, as_is: dict[int, Hit], turned: dict[int, Hit], mirrored: bool
) -> None:
    from PIL import ImageOps

    table = hash_table()
    if len(table.ids) == 0:
        return
    radius = settings.PROVENANT_PHASH_RADIUS
    views = [("", image)] + ([(" (mirrored)", ImageOps.mirror(image))] if mirrored else [])
    for label, view in views:
        phash = hashing.phash_int64(view)
        # a negative's pHash is the complement: inverting negates every DCT coefficient and their median
        for how, query_hash, found in ((label, phash, as_is), (f"{label} (inverted)", ~phash, turned)):
            distances = hashing.phash_distances(query_hash, table.phash)
            for i in np.flatnonzero((distances <= radius) & table.has_phash):
                d = int(distances[i])
                keep_better(found, Hit(int(table.ids[i]), 1 - d / 64, "hash", f"pHash distance {d}/64{how}"))
    pdq_hex, mirror_hex, quality = hashing.pdq_hash_and_mirror(image)
    if quality < settings.PROVENANT_PDQ_MIN_QUALITY:
        return
    for label, query_hex in [("", pdq_hex)] + ([(" (mirrored)", mirror_hex)] if mirrored else []):
        pdq_d = hashing.pdq_distances(query_hex, table.pdq)
        for i in np.flatnonzero((pdq_d <= settings.PROVENANT_PDQ_RADIUS) & table.pdq_ok):
            d = int(pdq_d[i])
            keep_better(as_is, Hit(int(table.ids[i]), 1 - d / 256, "hash", f"PDQ distance {d}/256{label}"))


def _thumbnail_hits(image: Image.Image, hidden: frozenset[int]) -> list[tuple[Hit, bool]]:
    """Works whose grey thumbnail correlates with the query's or its border-trimmed picture's, turned, flipped or
    inverted in any of the sixteen ways (each is an array operation on the thumbnail, not a new image); with each,
    whether it matched upright (as it is or mirrored)."""
    pictures = [("", image)]
    trimmed = trim_border(image)
    if trimmed is not None:
        pictures.append((" (border removed)", trimmed))
    views = [
        (f"{label}{how}", vector, how in thumbnails.UPRIGHT)
        for (label, _), base in zip(
            pictures, thumbnails.thumbnail_vectors([p for _, p in pictures]), strict=True
        )
        for how, vector in thumbnails.oriented_vectors(base)
    ]
    vectors = np.stack([vector for _, vector, _ in views])
    scores, ids = index.search_vectors(thumbnails.SPACE, vectors, THUMBNAIL_NEIGHBOURS, exclude_ids=hidden)
    minimum = settings.PROVENANT_THUMBNAIL_MIN_COSINE
    best: dict[int, tuple[Hit, bool]] = {}
    for (label, _, upright), row_scores, row_ids in zip(views, scores, ids, strict=True):
        for score, asset_id in zip(row_scores, row_ids, strict=True):
            if asset_id < 0 or score < minimum:
                continue
            hit = Hit(
                int(asset_id),
                round(float(score), 4),
                "hash",
                f"16x16 thumbnail correlation {score:.3f}{label}",
            )
            current, was_upright = best.get(hit.asset_id, (None, False))
            if current is None or hit.score > current.score:
                current = hit
            best[hit.asset_id] = (current, upright or was_upright)
    # Only the closest few: in a series of similar icons (1,375 star polygons) a rotated query clears the
    # threshold against many members, and they would push the true work, found by keypoints, out of the top ten.
    ranked = sorted(best.values(), key=lambda pair: pair[0].score, reverse=True)
    return ranked[: settings.PROVENANT_THUMBNAIL_MAX_HITS]


# --- embeddings -------------------------------------------------------------------------------------------------


def trim_border(image: Image.Image, tolerance: int = 24) -> Image.Image | None:
    """The picture without a uniform border (padding, a frame, a flat canvas), or None when there is none."""
    from PIL import Image as PILImage
    from PIL import ImageChops

    corner = image.getpixel((0, 0))

    diff = ImageChops.difference(image, PILImage.new(image.mode, image.size, corner)).convert("L")
    box = diff.point(lambda v: 255 if v > tolerance else 0).getbbox()
    if box is None:
        return None
    left, top, right, bottom = box
    if (right - left) * (bottom - top) > 0.9 * image.width * image.height or min(
        right - left, bottom - top
    ) < 16:
        return None
    return image.crop(box)


@dataclass
class _Query:
    """The query, or one separate picture inside it (embeddings.search.regions) searched as if it had been the query."""

    image: Image.Image
    region: regions.Region | None = None
    hashed: bool = False  # its hashes matched a work as it is: nothing left to verify
    found: list[Hit] = field(default_factory=list)  # what its own hashes, embedding and keypoints matched

    @property
    def label(self) -> str:
        """Appended to every reason found through this query."""
        return f" in the picture {self.region.where}" if self.region else ""

    def views(self) -> list[tuple[str, Image.Image]]:
        return query_views(self.image) if self.region is None else [("", self.image)]


def query_views(image: Image.Image) -> list[tuple[str, Image.Image]]:
    """The query, its mirror and the query without a uniform border."""
    from PIL import ImageOps

    views = [("", image), (" (mirrored)", ImageOps.mirror(image))]
    trimmed = trim_border(image)
    if trimmed is not None:
        views.append((" (border removed)", trimmed))
    return views


def _region_queries(image: Image.Image) -> list[_Query]:
    found = regions.find_regions(image, limit=settings.PROVENANT_SEARCH_REGION_MAX)
    return [_Query(image.crop(r.box), r) for r in found]


HashMatches = list[tuple[list[Hit], list[Hit]]]


def _hash_matches(queries: list[_Query], hidden: frozenset[int]) -> HashMatches:
    """Per query, its hash matches as it is (or mirrored) and those found only turned; nothing is changed, so that
    it can run beside the encoder."""
    return [_hash_hits(query.image, hidden, mirrored=query.region is None) for query in queries]


def _take_hash_matches(
    queries: list[_Query], matches: HashMatches, hits: dict[int, Hit]
) -> list[tuple[_Query, Hit]]:
    """Adds each query's hash matches as it is (or mirrored) to `hits`, ahead of whatever else the query found;
    returns those found only turned, each with the query that found it."""
    turned: list[tuple[_Query, Hit]] = []
    for query, (as_is, query_turned) in zip(queries, matches, strict=True):
        query.hashed = bool(as_is)
        for hit in as_is:
            keep_better(hits, _located(hit, query))
        query.found = as_is + query.found
        turned += [(query, _located(hit, query)) for hit in query_turned]
    return turned


def _to_verify(queries: list[_Query], candidates: list[list[int]], hits: dict[int, Hit]) -> list[int]:
    """Which queries go through geometric verification (the costly stage): the whole query, and of its regions
    those its hashes did not already match to a work, the most promising first (the closest embedding
    likeness among a region's candidates), PROVENANT_SEARCH_REGION_VERIFY at most."""
    open_regions = [n for n in range(1, len(queries)) if not queries[n].hashed]
    open_regions.sort(
        key=lambda n: max((hits[i].score for i in candidates[n][:1]), default=0.0), reverse=True
    )
    return [0, *sorted(open_regions[: settings.PROVENANT_SEARCH_REGION_VERIFY])]


def _embedding_hits(
    queries: list[_Query], hidden: frozenset[int], k: int
) -> tuple[dict[int, Hit], list[list[int]]]:
    """Best cosine per work over every view of every query, to whole works and to their parts
    (embeddings.search.parts), and per query its geometric-verification candidates: its rankings interleaved, so that a
    part matching a crop gets its top candidates verified too. All views are encoded and searched in one batch."""
    encoder = get_encoder()
    views = [
        (n, f"{label}{query.label}", view) for n, query in enumerate(queries) for label, view in query.views()
    ]
    vectors = encoder.encode_images([view for _, _, view in views])
    searches = (
        ("", _knn(encoder.space, vectors, k, hidden)),
        (" to a part of the work", _part_knn(encoder.space, vectors, k, hidden)),
    )
    rankings = [
        (n, f"{prefix}{label}", row_scores, row_ids)
        for prefix, (scores, ids) in searches
        for (n, label, _), row_scores, row_ids in zip(views, scores, ids, strict=True)
    ]
    hits: dict[int, Hit] = {}
    for _, label, row_scores, row_ids in rankings:
        for score, asset_id in zip(row_scores, row_ids, strict=True):
            if asset_id >= 0:
                keep_better(
                    hits,
                    Hit(int(asset_id), float(score), "embedding", f"embedding cosine {score:.3f}{label}"),
                )
    for hit in hits.values():
        hit.details["cosine"] = hit.score
    for n, query in enumerate(queries):  # each query's own nearest work (a ranking lists its best first)
        firsts = [
            (scores[0], int(ids[0])) for m, _, scores, ids in rankings if m == n and len(ids) and ids[0] >= 0
        ]
        query.found += [hits[max(firsts)[1]]] if firsts else []
    candidates: list[list[int]] = [[] for _ in queries]
    for n, found in enumerate(candidates):
        own = [row_ids for m, _, _, row_ids in rankings if m == n]
        for column in itertools.zip_longest(*own, fillvalue=-1):
            # rank 1 of every view and part ranking, then rank 2, ...
            found.extend(int(i) for i in column if i >= 0 and int(i) not in found)
    return hits, candidates


def _knn(space, vectors: np.ndarray, k: int, hidden: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
    return index.search_vectors(space, vectors, k, exclude_ids=hidden, nprobe=settings.PROVENANT_IVF_NPROBE)


def _part_knn(space, vectors: np.ndarray, k: int, hidden: frozenset[int]) -> tuple[list, list]:
    """Per query view, the works whose parts are nearest, best part per work, k works at most (empty rankings
    when no part index is published yet: parts are embedded in the background and used as they arrive)."""
    scores, ids = _knn(parts.parts_space(space), vectors, k * parts.PER_WORK, hidden)
    ranked_scores, ranked_ids = [], []
    for row_scores, row_ids in zip(scores, ids, strict=True):
        # FAISS ranks best first: a work's first row is its best part
        _, first = np.unique(row_ids, return_index=True)
        first = np.sort(first[row_ids[first] >= 0])[:k]
        ranked_scores.append(row_scores[first])
        ranked_ids.append(row_ids[first])
    return ranked_scores, ranked_ids


# --- geometric verification -------------------------------------------------------------------------------------


Votes = list[tuple[str, geometry.Features, list[int]]]


def _keypoint_votes(query: _Query, hidden: frozenset[int]) -> Votes:
    """Per orientation of the query (label, ORB features, the works its keypoints vote for most). ORB is not
    mirror-invariant, so the whole query's mirror image votes too; a region votes for fewer: it is one of several."""
    from PIL import ImageOps

    from embeddings.search import keypoints

    pictures = [("", query.image)]
    limit = settings.PROVENANT_KEYPOINT_CANDIDATES
    if query.region is None:
        pictures.append((" (mirrored)", ImageOps.mirror(query.image)))
    else:
        limit = max(1, limit // 2)
    voted = []
    for label, view in pictures:
        features = geometry.orb_features(view, max_keypoints=QUERY_KEYPOINTS)
        voted.append((label, features, keypoints.candidates(features, limit=limit, exclude=hidden)))
    return voted


def _geometric_hits(query: _Query, votes: Votes, embedding_candidates: list[int]) -> list[Hit]:
    """Verify each orientation against the works its keypoints voted for and the query's closest embedding
    candidates (ranked over every view, the mirror among them); each work keeps its better orientation."""
    closest = embedding_candidates[: settings.PROVENANT_GEOMETRIC_TOP]
    checks = [
        Check(label, features, list(dict.fromkeys(voted + closest))) for label, features, voted in votes
    ]
    return verify_candidates(checks, query.label)


# --- the cascade ------------------------------------------------------------------------------------------------


def search_image(
    image: Image.Image,
    *,
    sha256: str = "",
    top_k: int = 10,
    user: Any = None,
    stages: tuple[str, ...] = ("exact", "hash", "embedding", "geometric"),
    regions: bool | None = None,
) -> list[Hit]:
    """Ranked hits for a decoded RGB image. `stages` lets benchmarks run a single stage of the cascade;
    `regions` (default: the setting) searches each separate picture inside the query too, and a work found in
    one ranks as if that picture had been the query."""
    with one_hash_table():
        return _search_image(image, sha256, top_k, user, stages, regions)


def _search_image(
    image: Image.Image,
    sha256: str,
    top_k: int,
    user: Any,
    stages: tuple[str, ...],
    regions: bool | None,
) -> list[Hit]:
    hidden, flagged = collect_exclusions(user)
    queries = [_Query(image)]
    hits: dict[int, Hit] = {}
    # The whole query is always verified: its keypoints are found and voted for while its hashes are computed.
    whole_votes = _beside(_keypoint_votes, queries[0], hidden) if "geometric" in stages else None
    if "exact" in stages and sha256:
        for asset_id in (
            Asset.objects.filter(sha256=sha256).exclude(id__in=hidden).values_list("id", flat=True)
        ):
            keep_better(hits, Hit(asset_id, 1.0, "exact", "identical file (sha256)"))
    turned = _take_hash_matches(queries, _hash_matches(queries, hidden), hits) if "hash" in stages else []
    region_hashes = None
    # A query that is a work's file or matches one by its hashes as a whole is that work, not a composite: its
    # regions would only cost time (the cheap test before the detector).
    if (settings.PROVENANT_SEARCH_REGIONS if regions is None else regions) and not hits:
        regional = _region_queries(image)
        queries += regional
        if "hash" in stages:  # while the encoder embeds every view
            region_hashes = _beside(_hash_matches, regional, hidden)
    embedded: dict[int, Hit] = {}
    candidates: list[list[int]] = [[] for _ in queries]
    if "embedding" in stages:
        embedded, candidates = _embedding_hits(
            queries, hidden, max(top_k, settings.PROVENANT_SEARCH_CANDIDATES)
        )
    if region_hashes is not None:
        turned += _take_hash_matches(queries[1:], region_hashes.result(), hits)
    if "embedding" in stages:
        for hit in embedded.values():
            keep_better(hits, Hit(hit.asset_id, hit.score, hit.match, hit.why, details=dict(hit.details)))
    # A turned, flipped or inverted look-alike counts only if the embedding stage, which sees the whole picture,
    # found the work too: fifteen more thumbnail views are fifteen more chances for an unrelated icon to clear the
    # threshold, and a hash match outranks the embedding and keypoint matches of the true work.
    for query, hit in turned:
        if "embedding" not in stages or hit.asset_id in embedded:
            keep_better(hits, hit)
            query.found.append(hit)
    if whole_votes is not None:  # the geometric stage runs
        _geometric_stage(queries, candidates, hits, whole_votes, hidden)
    pool = _each_query_first(sorted(hits.values(), key=lambda h: h.rank_key, reverse=True), queries)
    pool = pool[: max(top_k, settings.PROVENANT_SEARCH_CANDIDATES)]
    assign_clusters(pool)
    ranked = diversify(pool, top_k, settings.PROVENANT_SEARCH_PER_CLUSTER)
    for hit in ranked:
        hit.opted_out = hit.asset_id in flagged
    return ranked


def _geometric_stage(
    queries: list[_Query],
    candidates: list[list[int]],
    hits: dict[int, Hit],
    whole_votes: Future[Votes],
    hidden: frozenset[int],
) -> None:
    """Adds what geometric verification confirms for the whole query and its most promising regions. The regions'
    keypoints are found and voted for on the search threads while the whole query is verified."""
    verified = _to_verify(queries, candidates, hits)
    votes = [whole_votes] + [_beside(_keypoint_votes, queries[n], hidden) for n in verified[1:]]
    for n, query_votes in zip(verified, votes, strict=True):
        unconfirmed = [i for i in dict.fromkeys(candidates[n]) if hits[i].match == "embedding"]
        for hit in _geometric_hits(queries[n], query_votes.result(), unconfirmed):
            keep_better(hits, hit)
            queries[n].found.append(hit)


def _beside(function: Callable[..., T], *args: Any) -> Future[T]:
    """function(*args) on a search thread, in this context (the pinned hash table). A search on 2 cores keeps one
    busy: the encoder gains little from the second on a few views, the rest of the cascade none."""
    return _search_threads().submit(contextvars.copy_context().run, function, *args)


@functools.cache
def _search_threads() -> ThreadPoolExecutor:
    """Made on first use, in the process that searches (not in a parent that forks workers)."""
    return ThreadPoolExecutor(
        max_workers=os.cpu_count() or 2, thread_name_prefix="search", initializer=_one_openmp_thread
    )


def _one_openmp_thread() -> None:
    """FAISS on a search thread runs on that thread alone: an OpenMP team of its own would spin on the core the
    search's first thread is using."""
    import faiss

    faiss.omp_set_num_threads(1)


def _each_query_first(ranked: list[Hit], queries: list[_Query]) -> list[Hit]:
    """The ranking with the best work of every query (the whole query, and each picture found inside it) ahead of
    the second best of any, each group in rank order. In a mood board the other pictures are often indexed works
    that hashes and keypoints match strongly, and their near neighbours would otherwise fill the page ahead of
    the work that only its own picture's embedding found."""
    firsts = {max(q.found, key=lambda h: h.rank_key).asset_id for q in queries if q.found}
    firsts |= {hit.asset_id for hit in ranked[:1]}  # whatever found it, the first stays first
    return [h for h in ranked if h.asset_id in firsts] + [h for h in ranked if h.asset_id not in firsts]


def _located(hit: Hit, query: _Query) -> Hit:
    hit.why += query.label
    return hit


def search_image_bytes(data: bytes, *, top_k: int = 10, user: Any = None) -> list[Hit]:
    """Decode untrusted bytes safely, then run the cascade. Raises ImageUnreadable (400) or PayloadTooLarge (413) for bad input."""
    from provenance.imaging import DecompressionBomb, ImageRejected, load_rgb

    if len(data) > settings.PROVENANT_MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(
            f"image is {len(data)} bytes; the limit is {settings.PROVENANT_MAX_UPLOAD_BYTES} bytes"
        )
    try:
        decoded = load_rgb(data, max_pixels=settings.PROVENANT_MAX_IMAGE_PIXELS)
    except ImageRejected as exc:
        raise ImageUnreadable(str(exc), too_large_to_open=isinstance(exc, DecompressionBomb)) from exc
    return search_image(decoded.image, sha256=hashlib.sha256(data).hexdigest(), top_k=top_k, user=user)
