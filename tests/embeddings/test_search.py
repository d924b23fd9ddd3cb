from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from core import exclusions
from embeddings.search import geometry, index
from embeddings.search.cascade import search_image, search_image_bytes
from embeddings.search.clusters import near_copy_ids
from embeddings.selectors import search_contributor, search_domain, search_text
from provenance.imaging import load_rgb
from tests.embeddings.conftest import jpeg_bytes
from tests.provenance.factories import AssetFactory, CollectionFactory


def _image(asset):
    from provenance.imaging import load_rgb_path

    return load_rgb_path(asset.local_path).image


def test_identical_file_is_an_exact_match(indexed_works):
    target = indexed_works[3]
    hits = search_image_bytes(open(target.local_path, "rb").read(), top_k=5)
    assert hits[0].asset_id == target.id and hits[0].match == "exact" and hits[0].score == 1.0


def test_resized_low_quality_jpeg_is_found_by_hash(indexed_works):
    target = indexed_works[5]
    image = _image(target)
    small = image.resize((image.width // 3, image.height // 3))
    hits = search_image_bytes(jpeg_bytes(small, quality=30), top_k=5)
    assert hits[0].asset_id == target.id and hits[0].match == "hash"
    assert "pHash" in hits[0].why or "PDQ" in hits[0].why


@pytest.fixture
def star_polygons(db, tmp_path):
    """openclipart's numbered star polygons: thin lines on white, where JPEG noise flips pHash bits."""
    from embeddings.services import index_collection
    from provenance.hashing import compute_hashes
    from provenance.imaging import load_rgb_path

    collection = CollectionFactory(name="stars")
    root = Path(__file__).resolve().parents[1] / "fixtures" / "openclipart" / "shapes" / "stars"
    stars = []
    for path in sorted(root.glob("star_*step.svg")):
        phash, pdq, quality = compute_hashes(load_rgb_path(path).image)
        stars.append(
            AssetFactory(
                collection=collection,
                source=path.name,
                local_path=str(path),
                phash=phash,
                pdq=pdq,
                pdq_quality=quality,
            )
        )
    index_collection(collection_name="stars")
    return stars


def test_low_quality_jpeg_of_line_art_is_found_by_its_thumbnail_when_phash_fails(star_polygons, settings):
    from provenance.hashing import phash_distances, phash_int64
    from provenance.imaging import load_rgb

    assert len(star_polygons) >= 4
    for target in star_polygons:
        query = load_rgb(jpeg_bytes(_image(target), quality=20)).image
        distance = phash_distances(phash_int64(query), np.array([target.phash], dtype=np.int64))[0]
        assert distance > settings.PROVENANT_PHASH_RADIUS  # pHash alone misses this copy
        hits = search_image(query, top_k=5, stages=("hash",))
        assert hits[0].asset_id == target.id and "thumbnail correlation" in hits[0].why
        assert [h.asset_id for h in hits] == [target.id]  # the other star polygons stay below the threshold


def test_mirrored_copy_is_found_by_the_mirrored_hash(indexed_works):
    target = indexed_works[7]
    hits = search_image(ImageOps.mirror(_image(target)), top_k=5)
    assert hits[0].asset_id == target.id and hits[0].match == "hash" and "mirrored" in hits[0].why


@pytest.mark.parametrize("work", [3, 7])
def test_a_negative_is_found_by_the_complemented_hashes(indexed_works, work):
    target = indexed_works[work]
    negative = load_rgb(jpeg_bytes(ImageOps.invert(_image(target)), quality=85)).image
    hits = search_image(negative, top_k=5, stages=("hash",))
    assert hits[0].asset_id == target.id and "(inverted)" in hits[0].why


@pytest.mark.parametrize(
    ("turn", "said"),
    [(Image.Transpose.FLIP_TOP_BOTTOM, "(upside down)"), (Image.Transpose.ROTATE_90, "(turned 270°)")],
)
def test_a_turned_or_flipped_copy_is_found_by_the_turned_thumbnail(indexed_works, turn, said):
    target = indexed_works[7]
    copy = load_rgb(jpeg_bytes(_image(target).transpose(turn), quality=85)).image
    hits = search_image(copy, top_k=5, stages=("hash",))
    assert hits[0].asset_id == target.id and said in hits[0].why


def test_a_turned_copy_keeps_its_hash_match_in_the_full_cascade(indexed_works):
    target = indexed_works[7]
    copy = load_rgb(jpeg_bytes(_image(target).transpose(Image.Transpose.FLIP_TOP_BOTTOM), quality=85)).image
    hits = search_image(copy, top_k=5)
    assert hits[0].asset_id == target.id and hits[0].match == "hash" and "(upside down)" in hits[0].why


@pytest.mark.parametrize("embedding_agrees", [False, True])
def test_a_turned_look_alike_counts_only_when_the_embedding_stage_agrees(
    indexed_works, monkeypatch, embedding_agrees
):
    from embeddings.search import cascade as search
    from embeddings.search.hits import Hit

    target, stranger = indexed_works[7], indexed_works[1]
    look_alike = Hit(stranger.id, 0.97, "hash", "16x16 thumbnail correlation 0.970 (upside down)")
    embedded = {target.id: Hit(target.id, 0.9, "embedding", "embedding cosine 0.900")}
    if embedding_agrees:
        embedded[stranger.id] = Hit(stranger.id, 0.5, "embedding", "embedding cosine 0.500")
    monkeypatch.setattr(search, "_hash_hits", lambda image, hidden, **kw: ([], [look_alike]))
    monkeypatch.setattr(
        search,
        "_embedding_hits",
        lambda queries, hidden, k: (dict(embedded), [list(embedded)] * len(queries)),
    )
    monkeypatch.setattr(search, "_geometric_hits", lambda *args: [])
    hits = search_image(_image(target), top_k=5)
    if embedding_agrees:
        assert (hits[0].asset_id, hits[0].match) == (stranger.id, "hash")
    else:
        assert [h.asset_id for h in hits] == [target.id]


def test_resized_copy_is_the_nearest_embedding(indexed_works):
    target = indexed_works[2]
    image = _image(target)
    hits = search_image(image.resize((300, int(300 * image.height / image.width))), stages=("embedding",))
    assert hits[0].asset_id == target.id and hits[0].match == "embedding" and hits[0].score > 0.9


def test_crop_is_confirmed_geometrically(indexed_works):
    target = indexed_works[9]
    image = _image(target)
    w, h = image.size
    crop = image.crop((int(w * 0.05), int(h * 0.1), int(w * 0.75), int(h * 0.8)))
    hits = search_image(crop, top_k=5)
    assert hits[0].asset_id == target.id and hits[0].match in ("geometric", "hash")
    hit = next(
        h for h in search_image(crop, top_k=5, stages=("embedding", "geometric")) if h.asset_id == target.id
    )
    assert hit.match == "geometric" and "ORB" in hit.why


def _corner_crop(image):
    """A crop of a flat region's worth of a drawing: the bottom right 65 % of each side, slightly off the parts'
    own boxes (70 %)."""
    w, h = image.size
    return image.crop((int(w * 0.33), int(h * 0.36), w, h))


@pytest.mark.parametrize("n", [1, 5, 9, 14])
def test_a_crop_finds_its_work_through_the_embeddings_of_the_works_parts(indexed_works, n):
    target = indexed_works[n]
    hits = search_image(_corner_crop(_image(target)), top_k=3, stages=("embedding",))
    assert hits[0].asset_id == target.id and "to a part of the work" in hits[0].why


def test_without_part_embeddings_the_crop_is_further_from_its_work(works, settings, fake_encoder):
    from embeddings.search import parts
    from embeddings.services import index_collection

    settings.PROVENANT_INDEX_PARTS = False
    index_collection(collection_name="fixtures")
    scores = []
    for target in (works[1], works[5], works[9], works[14]):
        hits = search_image(_corner_crop(_image(target)), top_k=16, stages=("embedding",))
        scores.append(next(h.score for h in hits if h.asset_id == target.id))
        assert all("part of the work" not in h.why for h in hits)
    settings.PROVENANT_INDEX_PARTS = True
    settings.PROVENANT_INDEX_SHARD_SIZE = 1  # a shard per batch: an interrupted run loses one batch at most
    run = index_collection(collection_name="fixtures", batch_size=4)  # the works are embedded already
    assert run.embedded == 0 and run.parts_embedded == len(works)
    assert len(index.shard_paths(parts.parts_space(fake_encoder.space))) == len(works) // 4
    with_parts = [
        next(
            h.score
            for h in search_image(_corner_crop(_image(t)), stages=("embedding",))
            if h.asset_id == t.id
        )
        for t in (works[1], works[5], works[9], works[14])
    ]
    assert all(b > a + 0.05 for a, b in zip(scores, with_parts, strict=True))


def test_mirrored_crop_is_confirmed_geometrically_by_the_mirrored_keypoints(indexed_works):
    target = indexed_works[9]
    image = _image(target)
    w, h = image.size
    crop = ImageOps.mirror(image.crop((int(w * 0.2), int(h * 0.1), int(w * 0.9), int(h * 0.85))))
    hit = next(
        h for h in search_image(crop, top_k=5, stages=("embedding", "geometric")) if h.asset_id == target.id
    )
    assert hit.match == "geometric" and "(mirrored)" in hit.why


def test_each_orientation_is_verified_against_its_own_candidates_only(indexed_works):
    from embeddings.search.verification import Check, verify_candidates

    target, other = indexed_works[9], indexed_works[3]
    image = _image(target)
    w, h = image.size
    crop = image.crop((int(w * 0.2), int(h * 0.1), int(w * 0.9), int(h * 0.85)))
    upright = geometry.orb_features(crop, max_keypoints=1000)
    flipped = geometry.orb_features(ImageOps.mirror(crop), max_keypoints=1000)
    # the keypoints that agree are the upright crop's: asked only of the mirrored orientation, the work fails
    assert (
        verify_candidates([Check("", upright, [other.id]), Check(" (mirrored)", flipped, [target.id])], "")
        == []
    )
    hits = verify_candidates(
        [Check(" (mirrored)", flipped, [target.id]), Check("", upright, [target.id])], ""
    )
    assert [h.asset_id for h in hits] == [target.id]
    assert hits[0].details["inliers"] >= 12 and "(mirrored)" not in hits[0].why


def test_copy_pasted_into_a_larger_canvas_is_confirmed_by_hash_or_geometry(indexed_works):
    target = indexed_works[11]
    image = _image(target).resize((400, 300))
    canvas = Image.new("RGB", (900, 700), (230, 240, 255))
    canvas.paste(_image(indexed_works[12]).resize((300, 250)), (560, 420))
    canvas.paste(image, (80, 60))
    hits = search_image(canvas, top_k=10)
    # cut out as a region, the copy is a hash match (or its keypoints agree): it ranks as if it had been the query
    assert hits[0].asset_id == target.id and hits[0].match in ("hash", "geometric")
    assert hits[0].tier == "work" and "in the picture at the top left" in hits[0].why


def test_hidden_work_is_excluded_without_rebuilding_the_index(indexed_works, fake_encoder):
    target = indexed_works[4]
    published = index.space_dir(fake_encoder.space) / index.INDEX_FILE
    before = published.stat().st_mtime_ns
    exclusions.register_exclusion_provider(lambda user: ({target.id}, set()))
    hits = search_image(_image(target), top_k=30)
    assert target.id not in [h.asset_id for h in hits]
    assert published.stat().st_mtime_ns == before


def test_flagged_work_stays_in_results_marked_opted_out(indexed_works):
    target = indexed_works[4]
    exclusions.register_exclusion_provider(lambda user: (set(), {target.id}))
    hits = search_image(_image(target), top_k=5)
    assert hits[0].asset_id == target.id and hits[0].opted_out
    assert not any(h.opted_out for h in hits[1:])


def test_near_copies_share_a_cluster_and_are_listed_together(indexed_works):
    from provenance.models import Asset

    original = indexed_works[6]
    Asset.objects.create(
        collection=original.collection, source="rehosted.svg", local_path=original.local_path
    )
    from embeddings.services import index_collection

    index_collection(collection_name="fixtures")
    copy = Asset.objects.get(source="rehosted.svg")
    assert near_copy_ids(original.id) == sorted([original.id, copy.id])
    hits = search_image(_image(original), top_k=5)
    clusters = {h.asset_id: h.cluster for h in hits}
    assert clusters[original.id] == clusters[copy.id]
    assert len(set(clusters.values())) > 1


def test_text_search_ranks_caption_matches_first(indexed_works):
    target = indexed_works[0]
    word = target.title.split()[0]
    hits = search_text(word, top_k=5)
    assert hits[0].match == "caption" and word.lower() in hits[0].why.lower()
    assert target.id in [h.asset_id for h in hits if h.match == "caption"]


def test_contributor_search_matches_display_name_and_alias_case_insensitively(indexed_works):
    expected = sorted(a.id for a in indexed_works if a.contributor.display_name == "Grace Hopper")
    assert sorted(h.asset_id for h in search_contributor("grace hop")) == expected
    assert sorted(h.asset_id for h in search_contributor("GRACE_1")) == expected
    assert search_contributor("nobody at all") == []


def test_domain_search_includes_subdomains_and_ranks_the_exact_url_first(indexed_works):
    on_example = sorted(a.id for a in indexed_works if a.domain.endswith("example.com"))
    assert sorted(h.asset_id for h in search_domain("example.com")) == on_example
    assert sorted(h.asset_id for h in search_domain("https://www.pictures.example.com/")) == on_example
    assert search_domain("example.org.evil") == []
    target = next(a for a in indexed_works if a.domain == "cdn.pictures.example.com")
    hits = search_domain("http://" + target.url.split("://")[1] + "/")  # another spelling of the same URL
    assert hits[0].asset_id == target.id and hits[0].match == "url"


def test_geometric_matches_rank_by_inliers_without_a_cap(indexed_works, monkeypatch):
    from embeddings.search import geometry

    first, second = indexed_works[0].id, indexed_works[1].id
    verifying = []
    real_features = geometry.asset_features

    def features(asset_id, path):
        verifying[:] = [asset_id]
        return real_features(asset_id, path)

    monkeypatch.setattr(geometry, "asset_features", features)
    query = _image(indexed_works[2])
    for counts in (
        {first: 130, second: 185},
        {first: 185, second: 130},
    ):  # whatever order they are verified in
        monkeypatch.setattr(geometry, "verify", lambda q, c, counts=counts: counts.get(verifying[0], 0))
        hits = search_image(query, top_k=10, stages=("embedding", "geometric"))
        geometric = [h.asset_id for h in hits if h.match == "geometric"]
        assert geometric == sorted(counts, key=counts.get, reverse=True)


def _hit(asset_id: int, cluster: int, score: float):
    from embeddings.search.hits import Hit

    return Hit(asset_id, score, "embedding", "", cluster=cluster)


def test_one_cluster_takes_at_most_its_share_of_the_page_before_other_works():
    from embeddings.search.hits import diversify

    series = [_hit(i, 1, 0.99 - i / 100) for i in range(1, 9)]  # eight near-identical drawings
    others = [_hit(20, 20, 0.6), _hit(30, 30, 0.5)]
    ranked = diversify(series + others, top_k=6, per_cluster=3)
    assert [h.asset_id for h in ranked] == [1, 2, 3, 20, 30, 4]  # the series' rest fills what is left
    assert [h.asset_id for h in diversify(series[:2] + others, top_k=3, per_cluster=3)] == [1, 2, 20]


@pytest.mark.parametrize("band", [(0, 0, 900, 50), (0, 620, 900, 700), (820, 0, 900, 700)])
def test_a_band_across_the_query_is_not_a_separate_picture(indexed_works, band):
    """A title bar, a watermark strip, a side panel: flat blocks from edge to edge, not pictures to search for."""
    from embeddings.search.regions import find_regions

    canvas = Image.new("RGB", (900, 700), (240, 240, 240))
    canvas.paste(_image(indexed_works[11]).resize((300, 260)), (120, 160))
    canvas.paste((30, 30, 36), band)
    regions = find_regions(canvas)
    assert len(regions) == 1
    left, top, right, bottom = regions[0].box  # the pasted picture, perhaps without its own white margin
    assert left >= 108 and top >= 148 and right <= 432 and bottom <= 432
    assert right - left >= 0.85 * 300 and bottom - top >= 0.85 * 260
