"""Keypoints and picture regions on real fixture works, at the sizes copies really come in."""

from pathlib import Path

from PIL import Image, ImageOps

from embeddings.search import geometry
from embeddings.search.regions import find_regions
from provenance.imaging import load_rgb_path

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
