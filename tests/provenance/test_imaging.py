"""Files as real tools write them: 16-bit scans, camera JPEGs with a second picture, TIFF with XMP, palette alpha."""

import io

import numpy as np
import pytest
from PIL import Image

from provenance.imaging import load_rgb
from provenance.metadata import raster_metadata
from tests.provenance.test_ingest import XMP


def _encoded(image: Image.Image, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def _ramp16() -> Image.Image:
    return Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))  # 0 .. 65520


def test_a_16_bit_greyscale_png_keeps_its_tones():
    decoded = load_rgb(_encoded(_ramp16(), "PNG"))
    pixels = np.asarray(decoded.image)
    assert decoded.image.mode == "RGB"
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255  # Pillow alone would clip all but row 0 to white
    assert abs(pixels.mean() - 127.5) < 2


def test_a_float_tiff_in_zero_to_one_is_scaled_not_clipped():
    ramp = Image.fromarray(np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64))
    pixels = np.asarray(load_rgb(_encoded(ramp, "TIFF")).image)
    assert abs(pixels.mean() - 127.5) < 2


def test_a_camera_jpeg_with_a_second_picture_is_read_as_jpeg():
    main, preview = Image.new("RGB", (120, 80), "navy"), Image.new("RGB", (60, 40), "red")
    data = _encoded(main, "MPO", save_all=True, append_images=[preview])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    decoded = load_rgb(data)
    assert decoded.format == "JPEG" and decoded.image.size == (120, 80)
    assert np.asarray(decoded.image)[40, 60, 2] > 100  # the main picture (navy), not the preview


def test_a_tiffs_xmp_tag_yields_the_data_mining_signal():
    data = _encoded(Image.new("RGB", (64, 48), "teal"), "TIFF", tiffinfo={700: XMP.encode()})
    decoded = load_rgb(data)
    meta = raster_metadata(data, decoded.format, decoded.info)
    assert decoded.format == "TIFF"
    assert [s.value for s in meta.signals] == ["DMI-PROHIBITED-AIMLTRAINING"]


def _square_on_transparency() -> Image.Image:
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (8, 8, 24, 24))
    return image


@pytest.mark.parametrize(
    "write",
    [
        lambda image: _encoded(image.convert("LA"), "PNG"),
        # a palette whose transparency is a tRNS table, as pngquant and optipng write them
        lambda image: _encoded(image.quantize(colors=4, method=Image.Quantize.FASTOCTREE), "PNG"),
    ],
    ids=["grey-alpha", "palette-trns"],
)
def test_transparent_greyscale_and_palette_pngs_are_flattened_on_white(write):
    pixels = np.asarray(load_rgb(write(_square_on_transparency())).image)
    assert tuple(pixels[0, 0]) == (255, 255, 255)  # the transparent corner is white, not black
    assert pixels[16, 16].max() < 230  # the opaque square stays dark
