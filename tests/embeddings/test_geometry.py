"""Keypoints and picture regions on real fixture works, at the sizes copies really come in."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from embeddings.search import geometry, keypoints
from embeddings.search.regions import find_regions
from provenance.imaging import load_rgb_path
from tests import composites

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openclipart"


def _work(name: str) -> Image.Image:
    return load_rgb_path(next(FIXTURES.rglob(name))).image


def _icon(image: Image.Image, side: int = 60) -> Image.Image:
    """The work as the 60 px icon renderings many openclipart works ship as."""
    scale = side / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)


def test_a_60_px_icon_has_keypoints_and_a_crop_of_it_is_verified():
    icon = _icon(_work("skoynk_peterm_.svg"))
    features = geometry.orb_features(icon)
    assert len(features.points) >= 100  # at 60 px and without scaling, ORB finds (almost) none
    w, h = icon.size
    crop = icon.crop((0, 0, int(w * 0.7), int(h * 0.75)))
    assert geometry.verify(geometry.orb_features(crop, max_keypoints=1000), features) >= 12


def test_faint_line_art_gets_keypoints_after_contrast_stretching():
    drawing = _work("skoynk_peterm_.svg").convert("L")
    faint = Image.eval(drawing, lambda v: 235 + v * 20 // 255).convert("RGB")  # every pixel within 235..255
    assert len(geometry.orb_features(faint).points) >= 100


def test_an_unrelated_work_is_not_verified():
    icon = geometry.orb_features(_icon(_work("skoynk_peterm_.svg"), 256))
    other = sorted(FIXTURES.rglob("*.svg"))[40]
    assert geometry.verify(icon, geometry.orb_features(load_rgb_path(other).image)) < 12


def _opencv_ratio_matches(query, candidate, ratio=0.8):
    """Lowe's ratio test as OpenCV's brute-force matcher does it: what geometry.ratio_matches replaces."""
    import cv2

    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query, candidate, k=2)
    return [
        (p[0].queryIdx, p[0].trainIdx) for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance
    ]


def test_ratio_matches_are_opencvs_for_copies_and_for_unrelated_works():
    works = [load_rgb_path(path).image for path in sorted(FIXTURES.rglob("*.svg"))[:12]]
    for n, work in enumerate(works):
        w, h = work.size
        copy = work.crop((w // 10, h // 8, w, h)).rotate(7, expand=True, fillcolor="white")
        query = geometry.orb_features(copy, max_keypoints=1000).descriptors
        for candidate in (work, works[(n + 1) % len(works)]):
            indexed = geometry.orb_features(candidate).descriptors
            rows, nearest = geometry.ratio_matches(query, indexed, 0.8)
            assert list(zip(rows.tolist(), nearest.tolist(), strict=True)) == _opencv_ratio_matches(
                query, indexed
            )


def test_a_rewritten_feature_file_is_read_afresh(settings, tmp_path):
    settings.PROVENANT_INDEX_DIR = str(tmp_path)
    work = _work("skoynk_peterm_.svg")
    geometry.save_features(7, geometry.orb_features(work))
    first = geometry.asset_features(7, "")
    assert geometry.asset_features(7, "") is first  # parsed once
    smaller = geometry.orb_features(_icon(work))
    geometry.save_features(7, smaller)
    assert len(geometry.asset_features(7, "").points) == len(smaller.points) != len(first.points)
    assert not first.descriptors.flags.writeable  # shared between callers: nobody may change it in place


def test_find_regions_cuts_out_each_picture_on_a_canvas():
    other = load_rgb_path(sorted(FIXTURES.rglob("*.svg"))[40]).image
    first, second = _icon(_work("skoynk_peterm_.svg"), 300), _icon(other, 250)
    canvas = Image.new("RGB", (900, 600), (200, 230, 200))
    canvas.paste(first, (30, 40))
    canvas.paste(second, (600, 300))
    sizes = [(r.box[2] - r.box[0], r.box[3] - r.box[1]) for r in find_regions(canvas)]
    assert len(sizes) == 2
    assert abs(sizes[0][0] - first.width) <= 24 and abs(sizes[0][1] - first.height) <= 24
    assert abs(sizes[1][0] - second.width) <= 24 and abs(sizes[1][1] - second.height) <= 24


def test_a_picture_filling_the_query_gives_no_region():
    framed = ImageOps.expand(_work("skoynk_peterm_.svg"), border=4, fill=(200, 230, 200))
    assert find_regions(framed) == []


def test_each_query_descriptor_votes_once_per_work_and_ties_keep_the_first_vote_order():
    import numpy as np

    from embeddings.search.keypoints import MAX_HAMMING, most_voted

    owner = np.array([5, 5, 9, 9, 3, 3, 4])  # descriptor position -> work
    positions = np.array(
        [
            [2, -1, -1, -1],  # work 9 votes first
            [0, 2, 4, 6],
            [1, 0, 3, 5],  # two descriptors of work 5: one vote
            [4, 2, 6, 0],  # work 4's descriptor is too far
            [6, 6, 0, 6],
        ]
    )
    distances = np.full(positions.shape, 10)
    distances[3, 2] = MAX_HAMMING + 1
    # votes: 9 -> 4 (the first in row 0), 5 -> 4 (the first in row 1), 3 -> 3, 4 -> 2 (below the 3 needed)
    assert most_voted(distances, owner, positions, limit=10, exclude=frozenset()) == [9, 5, 3]
    assert most_voted(distances, owner, positions, limit=2, exclude=frozenset({9})) == [5, 3]


def test_find_regions_cuts_a_white_mood_board_at_its_gutters():
    """Drawings on white in white cells, 6 px apart: where two drawings fill their cells, their strokes join
    into one component and no edge runs between them; every cell is still a region of its own."""
    drawings = [load_rgb_path(path).image for path in sorted(FIXTURES.rglob("*.svg"))[:9]]
    cell, gutter = 300, 6
    board = Image.new("RGB", (3 * cell + 4 * gutter, 3 * cell + 4 * gutter), "white")
    cells = []
    for n, drawing in enumerate(drawings):
        x, y = gutter + (n % 3) * (cell + gutter), gutter + (n // 3) * (cell + gutter)
        board.paste(ImageOps.pad(drawing, (cell, cell), color=(255, 255, 255)), (x, y))
        cells.append((x, y, x + cell, y + cell))
    found = [region.box for region in find_regions(board, limit=10)]
    for drawing, cell in zip(drawings, cells, strict=True):
        inked = composites.drawing_box(drawing, cell, "grid")
        assert any(composites.holds_work(box, cell, inked) for box in found), cell


def test_the_pack_serves_each_work_as_its_file_holds_it_until_the_file_changes(settings, tmp_path):
    from embeddings.search import feature_pack, keypoints

    settings.PROVENANT_INDEX_DIR = str(tmp_path)
    saved = {
        asset_id: geometry.orb_features(_work(name))
        for asset_id, name in ((3, "skoynk_peterm_.svg"), (7, "skoynk_peterm_.svg"))
    }
    saved[7] = geometry.orb_features(_icon(_work("skoynk_peterm_.svg")))
    for asset_id, features in saved.items():
        geometry.save_features(asset_id, features)
    keypoints.build([3, 5, 7])  # 5 has no features: left out
    works, _, _ = feature_pack.packed()
    assert works[:, 0].tolist() == [3, 7]
    for asset_id, features in saved.items():
        packed = geometry.asset_features(asset_id, "")
        assert isinstance(packed.descriptors, np.memmap)  # served from the pack, not parsed from the file
        assert np.array_equal(packed.points, features.points)
        assert np.array_equal(packed.descriptors, features.descriptors)
        assert not packed.descriptors.flags.writeable
    rewritten = geometry.orb_features(_icon(_work("skoynk_peterm_.svg"), side=90))
    geometry.save_features(3, rewritten)
    assert np.array_equal(geometry.asset_features(3, "").descriptors, rewritten.descriptors)
    geometry.save_features(9, rewritten)  # indexed after the pack was written
    assert np.array_equal(geometry.asset_features(9, "").points, rewritten.points)

    first = feature_pack.packed()
    keypoints.build([3, 7, 9])
    assert feature_pack.packed()[0][:, 0].tolist() == [3, 7, 9]
    assert (
        len(list((tmp_path / "features" / geometry.FEATURES_VERSION / "pack").iterdir())) == 2
    )  # one folder
    assert np.array_equal(
        first[2][: len(saved[3].descriptors)], saved[3].descriptors
    )  # a mapped old pack reads on


def test_an_empty_pack_serves_nothing(settings, tmp_path):
    from embeddings.search import feature_pack

    settings.PROVENANT_INDEX_DIR = str(tmp_path)
    feature_pack.write([1, 2])
    assert feature_pack.lookup(1, 0) is None


def test_each_inverted_list_holds_about_the_same_number_of_descriptors_at_any_size():
    # what one probed list costs a query descriptor: the same at the demo's size as at a tenth of it
    for total in (50_000, 190_000, 1_912_727):
        assert 350 <= total / keypoints.list_count(total) <= 710
    assert keypoints.list_count(1_000) == 16  # a tiny collection still gets a few lists to train
    assert keypoints.list_count(10**9) == keypoints.MAX_LISTS


def test_the_keypoint_index_built_a_work_at_a_time_is_the_one_built_at_once(settings, tmp_path, monkeypatch):
    settings.PROVENANT_INDEX_DIR = str(tmp_path)
    for asset_id, name in enumerate(("skoynk_peterm_.svg", "skoynk_peterm_.svg"), start=1):
        geometry.save_features(asset_id, geometry.orb_features(_work(name)))
    geometry.save_features(2, geometry.orb_features(_icon(_work("skoynk_peterm_.svg"))))
    geometry.save_features(3, geometry.EMPTY)  # no keypoints at all: nothing to add, nothing to skip
    built = {}
    for chunk in (1, 10_000):
        monkeypatch.setattr(keypoints, "ADD_CHUNK", chunk)
        keypoints.build([1, 2, 3])
        index_path, ids_path, _ = keypoints._paths()
        built[chunk] = (index_path.read_bytes(), np.load(ids_path))
    assert built[1][0] == built[10_000][0]
    assert np.array_equal(built[1][1], built[10_000][1])
    kept = [geometry.asset_features(i, "").descriptors[: keypoints.PER_WORK] for i in (1, 2, 3)]
    assert built[1][1].tolist() == [1] * len(kept[0]) + [2] * len(kept[1])
    # the same as the plain recipe, all descriptors in memory: the same training sample, the same lists
    import faiss

    data = np.ascontiguousarray(np.concatenate(kept))
    nlist = keypoints.list_count(len(data))
    plain = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(256), 256, nlist)
    plain.train(
        data[
            np.random.default_rng(0).choice(
                len(data), size=min(len(data), keypoints.TRAIN_PER_LIST * nlist), replace=False
            )
        ]
    )
    plain.add(data)
    assert faiss.serialize_index_binary(plain).tobytes() == built[1][0]
