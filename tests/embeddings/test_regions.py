"""Search inside composites: the region detector, and works found small inside a screenshot, a grid or a mockup."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from embeddings.search.cascade import search_image
from embeddings.search.regions import find_regions
from provenance.imaging import load_rgb
from tests import composites
from tests.embeddings.conftest import jpeg_bytes


def _image(asset):
    from provenance.imaging import load_rgb_path

    return load_rgb_path(asset.local_path).image


def _others(works):
    return [_image(w) for w in works[8:14]]


@pytest.mark.parametrize("family", ["page", "chat", "grid", "mockup"])
def test_the_detector_cuts_out_a_work_pasted_small_into_a_composite(indexed_works, family):
    work = _image(indexed_works[2])
    composite, truth = composites.MAKERS[family](work, np.random.default_rng(3), _others(indexed_works))
    drawing = composites.drawing_box(work, truth, family)
    found = find_regions(composite, limit=6)
    assert any(composites.holds_work(region.box, truth, drawing) for region in found)
    assert len(found) <= 6


def test_a_page_of_text_alone_gives_no_region():
    page = Image.new("RGB", (1200, 800), "white")
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(page)
    for line in range(20):
        draw.text(
            (40, 40 + 34 * line),
            "the artist shared new work today " * 3,
            fill="black",
            font=ImageFont.load_default(size=18),
        )
    assert find_regions(page) == []


def test_a_work_in_a_screenshot_ranks_as_if_it_had_been_the_query(indexed_works):
    target = indexed_works[5]
    shot, _ = composites.page(_image(target), np.random.default_rng(1), _others(indexed_works))
    query = load_rgb(jpeg_bytes(shot, quality=85)).image
    hits = search_image(query, top_k=10, regions=True)
    found = next(h for h in hits if h.asset_id == target.id)
    assert hits.index(found) == 0 and found.match in ("hash", "geometric")
    assert "in the picture at the" in found.why and "% of the query's width" in found.why
    assert found.tier == "work"


def test_region_search_can_be_switched_off_and_skips_a_query_that_is_a_work_as_a_whole(
    indexed_works, settings, monkeypatch
):
    from embeddings.search import regions

    calls = []
    monkeypatch.setattr(regions, "find_regions", lambda image, limit: calls.append(limit) or [])
    board, _ = composites.grid(_image(indexed_works[1]), np.random.default_rng(2), _others(indexed_works))
    settings.PROVENANT_SEARCH_REGIONS = False
    search_image(board, top_k=5)
    assert calls == []
    settings.PROVENANT_SEARCH_REGIONS = True
    settings.PROVENANT_SEARCH_REGION_MAX = 3
    search_image(board, top_k=5)
    assert calls == [3]  # the cap on regions reaches the detector
    search_image(_image(indexed_works[1]), top_k=5)  # found by its hashes: not a composite
    assert calls == [3]


def test_only_the_most_promising_regions_the_hashes_left_open_are_verified_geometrically(
    indexed_works, settings, monkeypatch
):
    from embeddings.search import cascade

    verified = []
    real = cascade._geometric_hits
    monkeypatch.setattr(
        cascade, "_geometric_hits", lambda query, *args: verified.append(query.region) or real(query, *args)
    )
    board, _ = composites.grid(_image(indexed_works[1]), np.random.default_rng(2), _others(indexed_works))
    settings.PROVENANT_SEARCH_REGION_MAX, settings.PROVENANT_SEARCH_REGION_VERIFY = 8, 1
    search_image(board, top_k=10, regions=True)
    assert verified[0] is None and len(verified) <= 2  # the whole query, then one region at most
    assert len(find_regions(board, limit=8)) > 2  # more regions were searched by hashes and embeddings


def test_the_work_done_beside_the_encoder_gives_what_doing_it_in_turn_gives(indexed_works, monkeypatch):
    from concurrent.futures import Future

    from embeddings.search import cascade

    # the other cells are indexed works too: the regions' own hashes, computed beside the encoder, find them
    board, _ = composites.grid(_image(indexed_works[1]), np.random.default_rng(2), _others(indexed_works))
    query = load_rgb(jpeg_bytes(board, quality=90)).image
    beside = [(h.asset_id, h.match, h.why, h.score) for h in search_image(query, top_k=10, regions=True)]
    assert any(match == "hash" and "in the picture" in why for _, match, why, _ in beside)

    def in_turn(function, *args):
        done = Future()
        done.set_result(function(*args))
        return done

    monkeypatch.setattr(cascade, "_beside", in_turn)
    assert [
        (h.asset_id, h.match, h.why, h.score) for h in search_image(query, top_k=10, regions=True)
    ] == beside


def test_the_best_work_of_each_region_ranks_ahead_of_the_second_best_of_any():
    from embeddings.search.cascade import _each_query_first, _Query
    from embeddings.search.hits import Hit

    board = Image.new("RGB", (8, 8))
    whole, cell, target_cell = _Query(board), _Query(board), _Query(board)
    strong = [Hit(n, 0.9 - n / 100, "hash", "pHash") for n in range(1, 10)]
    target = Hit(42, 0.55, "embedding", "embedding cosine 0.550 in the picture at the top left")
    whole.found, cell.found = strong[:3], strong[3:]
    target_cell.found = [target, Hit(43, 0.5, "embedding", "embedding cosine 0.500")]
    ranked = sorted([*strong, target, target_cell.found[1]], key=lambda h: h.rank_key, reverse=True)

    reordered = [h.asset_id for h in _each_query_first(ranked, [whole, cell, target_cell])]

    assert reordered == [1, 4, 42, 2, 3, 5, 6, 7, 8, 9, 43]
    assert [h.asset_id for h in _each_query_first(ranked, [whole])] == [h.asset_id for h in ranked]
