"""Opening untrusted images safely: size and pixel limits, SVG without network or entities, alpha on white.

Everything that decodes pixels (ingest, search uploads, indexing, benchmarks) goes through `load_rgb`.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 64_000_000
RASTER_FORMATS = {"PNG", "JPEG", "WEBP", "GIF"}
SVG_RENDER_MAX_SIDE = 1024


class ImageRejected(ValueError):
    """The bytes are not an image we accept; the message says why, for the person who sent them."""


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, alpha composited on white
    format: str  # PNG, JPEG, WEBP, GIF or SVG
    width: int  # of the original, before any reduction
    height: int
    info: dict  # Pillow's info of the original (XMP, EXIF, ICC...), empty for SVG


def is_svg(data: bytes) -> bool:
    head = data[:2048].lstrip().lower()
    return head.startswith(b"<?xml") and b"<svg" in data[:8192].lower() or head.startswith(b"<svg")


def _refuse_external_urls(url: str, *args, **kwargs):
    # An SVG may reference http:// or file:// resources; fetching them would leak requests or local files.
    if url.startswith("data:"):
        from cairosvg.url import fetch

        return fetch(url, *args, **kwargs)
    raise ImageRejected(f"SVG references an external resource ({url[:80]}), which is not fetched")


def render_svg(data: bytes, *, max_side: int = SVG_RENDER_MAX_SIDE) -> Image.Image:
    """Render an SVG to RGBA with cairosvg, no entities, no external resources, bounded output size."""
    import cairosvg
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        root = ElementTree.fromstring(data)
    except DefusedXmlException as exc:
        raise ImageRejected(f"SVG uses forbidden XML constructs ({type(exc).__name__})") from exc
    except ElementTree.ParseError as exc:
        raise ImageRejected(f"SVG is not well-formed XML: {exc}") from exc
    if not root.tag.endswith("svg"):
        raise ImageRejected("XML file is not an SVG")
    try:
        png = cairosvg.svg2png(
            bytestring=data, output_width=max_side, url_fetcher=_refuse_external_urls, unsafe=False
        )
    except ImageRejected:
        raise
    except Exception as exc:  # cairosvg raises many types for broken drawings
        raise ImageRejected(f"SVG could not be rendered: {exc}") from exc
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def flatten_on_white(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited on white: most clip art is transparent line work."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int | None = 1024
) -> DecodedImage:
    """Decode bytes into an RGB image (reduced so its long side is at most `max_side`)."""
    if not data:
        raise ImageRejected("empty file")
    if is_svg(data):
        rgba = render_svg(data, max_side=max_side or SVG_RENDER_MAX_SIDE)
        return DecodedImage(flatten_on_white(rgba), "SVG", rgba.width, rgba.height, {})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageRejected("not an image (unrecognised format)") from exc
    if image.format not in RASTER_FORMATS:
        raise ImageRejected(f"unsupported image format {image.format}")
    width, height = image.size
    image_format = image.format
    if width * height > max_pixels:
        raise ImageRejected(
            f"decompression bomb guard: {width}x{height} = {width * height / 1e6:.0f} MP exceeds "
            f"the {max_pixels / 1e6:.0f} MP limit"
        )
    info = dict(image.info)
    try:
        if max_side and image.format == "JPEG":
            image.draft("RGB", (max_side, max_side))  # DCT scaling: decode JPEGs at reduced size, much faster
        image = ImageOps.exif_transpose(image)
        image.load()
        if max_side:
            image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
        rgb = flatten_on_white(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRejected(f"corrupt or truncated image: {exc}") from exc
    return DecodedImage(rgb, image_format, width, height, info)


def load_rgb_path(path: str | Path, **kwargs) -> DecodedImage:
    return load_rgb(Path(path).read_bytes(), **kwargs)
