"""Find a work by image: a cascade of exact bytes, perceptual hashes, embedding kNN and geometric verification.

Each stage catches what the previous one misses: sha256 only the identical file, pHash/PDQ and grey thumbnails
re-encodes, resizes and (mirrored too) flips; the embedding finds edits that move every pixel (colour shifts,
overlays, rotations), and the embeddings of fixed parts of every work find crops; ORB + RANSAC confirms crops and
copies pasted into a larger picture, which the whole-image embedding ranks too low. Hits are grouped into
near-duplicate clusters and say why they matched.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.db.models import Count, Max

from core.exceptions import ImageUnreadable, PayloadTooLarge
from core.exclusions import collect_exclusions
from embeddings import geometry, index, parts, regions, thumbnails
from embeddings.encoder import get_encoder
from provenance import hashing
from provenance.models import Asset

if TYPE_CHECKING:
    from PIL import Image

QUERY_KEYPOINTS = 1000  # more than indexed works keep: a query may hold several pictures
THUMBNAIL_NEIGHBOURS = 10  # per query view
REGION_CANDIDATES = 3  # of each region's embedding candidates, verified against the whole query too
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


def _better(hits: dict[int, Hit], hit: Hit) -> None:
    current = hits.get(hit.asset_id)
    if current is None or hit.rank_key > current.rank_key:
        if current is not None:
            hit.details = {**current.details, **hit.details}
        hits[hit.asset_id] = hit
    else:
        current.details.update(hit.details)


# --- perceptual hash table --------------------------------------------------------------------------------------


@dataclass
class HashTable:
    key: tuple
    ids: np.ndarray
    phash: np.ndarray  # int64; rows without a pHash are masked by has_phash
    has_phash: np.ndarray
    pdq: np.ndarray  # (n, 32) uint8
    pdq_ok: np.ndarray  # PDQ present and of usable quality


_hash_table: HashTable | None = None
_hash_lock = threading.Lock()


def hash_table() -> HashTable:
    """All assets' hashes as numpy arrays, reloaded when assets are added or changed (one aggregate query)."""
    global _hash_table
    stats = Asset.objects.aggregate(n=Count("id"), last=Max("id"), changed=Max("updated_at"))
    key = (stats["n"], stats["last"], stats["changed"])
    with _hash_lock:
        if _hash_table is not None and _hash_table.key == key:
            return _hash_table
        rows = list(Asset.objects.order_by("id").values_list("id", "phash", "pdq", "pdq_quality"))
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        phash = np.array([r[1] if r[1] is not None else 0 for r in rows], dtype=np.int64)
        has_phash = np.array([r[1] is not None for r in rows], dtype=bool)
        pdq = hashing.pdq_to_array([r[2] for r in rows])
        min_quality = settings.PROVENANT_PDQ_MIN_QUALITY
        pdq_ok = np.array([bool(r[2]) and (r[3] or 0) >= min_quality for r in rows], dtype=bool)
        _hash_table = HashTable(key, ids, phash, has_phash, pdq, pdq_ok)
        return _hash_table


def _hash_hits(
    image: Image.Image, hidden: frozenset[int], *, mirrored: bool = True
) -> tuple[list[Hit], list[Hit]]:
    """Hash matches of the query as it is (or mirrored), and those found only by turning, flipping or inverting
    it, which the cascade keeps only when the embedding stage agrees. `mirrored` False hashes no mirror image
    (a region of a query: the thumbnail's orientations, which cost nothing, still include it)."""
    as_is: dict[int, Hit] = {}
    turned: dict[int, Hit] = {}
    for hit, upright in _thumbnail_hits(image, hidden):
        _better(as_is if upright else turned, hit)
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
                _better(found, Hit(int(table.ids[i]), 1 - d / 64, "hash", f"pHash distance {d}/64{how}"))
        pdq_hex, quality = hashing.pdq_hash(view)
        if quality >= settings.PROVENANT_PDQ_MIN_QUALITY:
            pdq_d = hashing.pdq_distances(pdq_hex, table.pdq)
            for i in np.flatnonzero((pdq_d <= settings.PROVENANT_PDQ_RADIUS) & table.pdq_ok):
                d = int(pdq_d[i])
                _better(as_is, Hit(int(table.ids[i]), 1 - d / 256, "hash", f"PDQ distance {d}/256{label}"))


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
    """The query, or one separate picture inside it (embeddings.regions) searched as if it had been the query."""

    image: Image.Image
    region: regions.Region | None = None

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


def _hash_stage(queries: list[_Query], hidden: frozenset[int], hits: dict[int, Hit]) -> list[Hit]:
    """Adds each query's hash matches as it is (or mirrored) to `hits`; returns those found only turned."""
    turned: list[Hit] = []
    for query in queries:
        as_is, query_turned = _hash_hits(query.image, hidden, mirrored=query.region is None)
        for hit in as_is:
            _better(hits, _located(hit, query))
        turned += [_located(hit, query) for hit in query_turned]
    return turned


def _embedding_hits(
    queries: list[_Query], hidden: frozenset[int], k: int
) -> tuple[dict[int, Hit], list[list[int]]]:
    """Best cosine per work over every view of every query, to whole works and to their parts
    (embeddings.parts), and per query its geometric-verification candidates: its rankings interleaved, so that a
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
                _better(
                    hits,
                    Hit(int(asset_id), float(score), "embedding", f"embedding cosine {score:.3f}{label}"),
                )
    for hit in hits.values():
        hit.details["cosine"] = hit.score
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


def _geometric_hits(query: _Query, embedding_candidates: list[int], hidden: frozenset[int]) -> list[Hit]:
    """Verify the works the query's keypoints vote for, then the embedding candidates. ORB is not
    mirror-invariant, so the whole query's mirror image votes and is verified too; each work keeps its better
    orientation. A region is verified as it is, against fewer candidates: it is one of several."""
    from PIL import ImageOps

    from embeddings import keypoints

    pictures = [("", query.image)]
    limit, top = settings.PROVENANT_KEYPOINT_CANDIDATES, settings.PROVENANT_GEOMETRIC_TOP
    if query.region is None:
        pictures.append((" (mirrored)", ImageOps.mirror(query.image)))
    else:
        limit, top = max(1, limit // 2), max(1, top // 6)
    orientations = [
        (label, geometry.orb_features(view, max_keypoints=QUERY_KEYPOINTS)) for label, view in pictures
    ]
    voted: list[int] = []
    for _, features in orientations:
        voted += keypoints.candidates(features, limit=limit, exclude=hidden)
    candidates = list(dict.fromkeys(voted + embedding_candidates[:top]))
    return _verify(orientations, candidates, query.label)


def _inlier_score(inliers: int) -> float:
    """In [0, 1), rising with every inlier: a capped score would tie a 130- and a 185-inlier match."""
    return round(inliers / (inliers + 25), 4)


def _verify(
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
            hits.append(Hit(asset_id, _inlier_score(inliers), "geometric", why, details={"inliers": inliers}))
    return hits


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
    hidden, flagged = collect_exclusions(user)
    queries = [_Query(image)]
    hits: dict[int, Hit] = {}
    if "exact" in stages and sha256:
        for asset_id in (
            Asset.objects.filter(sha256=sha256).exclude(id__in=hidden).values_list("id", flat=True)
        ):
            _better(hits, Hit(asset_id, 1.0, "exact", "identical file (sha256)"))
    turned = _hash_stage(queries, hidden, hits) if "hash" in stages else []
    # A query that is a work's file or matches one by its hashes as a whole is that work, not a composite: its
    # regions would only cost time (the cheap test before the detector).
    if (settings.PROVENANT_SEARCH_REGIONS if regions is None else regions) and not hits:
        regional = _region_queries(image)
        queries += regional
        turned += _hash_stage(regional, hidden, hits) if "hash" in stages else []
    embedded: dict[int, Hit] = {}
    candidates: list[list[int]] = [[] for _ in queries]
    if "embedding" in stages:
        embedded, candidates = _embedding_hits(
            queries, hidden, max(top_k, settings.PROVENANT_SEARCH_CANDIDATES)
        )
        for hit in embedded.values():
            _better(hits, Hit(hit.asset_id, hit.score, hit.match, hit.why, details=dict(hit.details)))
    # A turned, flipped or inverted look-alike counts only if the embedding stage, which sees the whole picture,
    # found the work too: fifteen more thumbnail views are fifteen more chances for an unrelated icon to clear the
    # threshold, and a hash match outranks the embedding and keypoint matches of the true work.
    for hit in turned:
        if "embedding" not in stages or hit.asset_id in embedded:
            _better(hits, hit)
    if "geometric" in stages:
        # the whole query also verifies its regions' first candidates: with all its keypoints, a copy pasted at
        # half the width can agree with more of them than the region's own crop does
        candidates[0] = candidates[0] + [i for own in candidates[1:] for i in own[:REGION_CANDIDATES]]
        for query, own in zip(queries, candidates, strict=True):
            unconfirmed = [i for i in dict.fromkeys(own) if hits[i].match == "embedding"]
            for hit in _geometric_hits(query, unconfirmed, hidden):
                _better(hits, hit)
    pool = sorted(hits.values(), key=lambda h: h.rank_key, reverse=True)
    pool = pool[: max(top_k, settings.PROVENANT_SEARCH_CANDIDATES)]
    assign_clusters(pool)
    ranked = diversify(pool, top_k, settings.PROVENANT_SEARCH_PER_CLUSTER)
    for hit in ranked:
        hit.opted_out = hit.asset_id in flagged
    return ranked


def _located(hit: Hit, query: _Query) -> Hit:
    hit.why += query.label
    return hit


def diversify(ranked: list[Hit], top_k: int, per_cluster: int) -> list[Hit]:
    """The top_k hits with at most per_cluster members of one near-copy cluster ahead of any other work; the
    cluster's further members fill the places left, in rank order. A query holding one drawing of a series of
    near-identical ones (star polygons, a flag's variants) matches the whole series, which would push a second
    picture in the query, or a weaker true match, off the page."""
    taken: dict[int, int] = {}
    first, later = [], []
    for hit in ranked:
        key = hit.cluster if hit.cluster is not None else hit.asset_id
        (first if taken.get(key, 0) < per_cluster else later).append(hit)
        taken[key] = taken.get(key, 0) + 1
    return (first + later)[:top_k]


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


# --- near-duplicate clusters ------------------------------------------------------------------------------------


class VectorStore:
    """Indexed vectors by asset id, memory-mapped from the shards (float16), for cluster checks."""

    def __init__(self, space) -> None:
        shards = index.shard_paths(space)
        loaded = [index.load_shard(s) for s in shards]
        self.key = [s.name for s in shards]
        ids = np.concatenate([i for i, _ in loaded]) if loaded else np.zeros(0, np.int64)
        self._arrays = [v for _, v in loaded]
        offsets = np.cumsum([0] + [len(i) for i, _ in loaded])
        shard_of = (
            np.repeat(np.arange(len(loaded)), [len(i) for i, _ in loaded]) if loaded else np.zeros(0, int)
        )
        # the last occurrence of an id wins (a re-embedded work)
        order = np.lexsort((np.arange(len(ids)), ids))
        self._ids, self._shard, self._row = (
            ids[order],
            shard_of[order],
            (np.arange(len(ids)) - offsets[shard_of])[order] if len(ids) else np.zeros(0, int),
        )

    def get(self, asset_ids: list[int]) -> dict[int, np.ndarray]:
        out = {}
        for asset_id in asset_ids:
            pos = np.searchsorted(self._ids, asset_id, side="right") - 1
            if pos >= 0 and self._ids[pos] == asset_id:
                out[asset_id] = np.asarray(self._arrays[self._shard[pos]][self._row[pos]], dtype=np.float32)
        return out


_stores: dict[str, VectorStore] = {}


def vector_store() -> VectorStore:
    space = get_encoder().space
    names = [s.name for s in index.shard_paths(space)]
    store = _stores.get(space.id)
    if store is None or store.key != names:
        store = _stores[space.id] = VectorStore(space)
    return store


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
    phashes = dict(Asset.objects.filter(id__in=ids, phash__isnull=False).values_list("id", "phash"))
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
    query = [("", geometry.asset_features(asset_id, local_path))]
    return {hit.asset_id: hit.score for hit in _verify(query, candidates, "")}
