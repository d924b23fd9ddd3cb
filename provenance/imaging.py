"""Opening untrusted images safely: size and pixel limits, SVG without network or entities, alpha on white.

Everything that decodes pixels (ingest, search uploads, indexing, benchmarks) goes through `load_rgb`.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, TiffImagePlugin, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 64_000_000
# MPO is what Pillow calls a camera JPEG carrying a second picture (a preview or a stereo pair): it is a JPEG
RASTER_FORMATS = {"PNG", "JPEG", "MPO", "WEBP", "GIF", "TIFF", "BMP", "AVIF"}
FORMAT_NAMES = {"MPO": "JPEG"}
HIGH_BIT_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
SVG_RENDER_MAX_SIDE = 1024


class ImageRejected(ValueError):
    """The bytes are not an image we accept; the message says why, for the person who sent them."""


class DecompressionBomb(ImageRejected):
    """An image whose pixel count is past the limit: it may be a real picture, too large to open safely."""


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, alpha composited on white
    format: str  # PNG, JPEG, WEBP, GIF, TIFF, BMP, AVIF or SVG
    width: int  # of the original, before any reduction
    height: int
    info: dict  # Pillow's info of the original (XMP, EXIF, ICC...), empty for SVG


def is_svg(data: bytes) -> bool:
    head = data[:2048].lstrip().lower()
    return head.startswith(b"<?xml") and b"<svg" in data[:8192].lower() or head.startswith(b"<svg")


def _svg_aspect(root) -> float:
    """height / width from viewBox or width/height attributes; 1.0 when unknown."""
    numbers = [float(n) for n in re.findall(r"[-+]?\d*\.?\d+", root.get("viewBox", ""))]
    if len(numbers) == 4 and numbers[2] > 0 and numbers[3] > 0:
        return numbers[3] / numbers[2]
    width_match, height_match = (re.match(r"\s*([\d.]+)", root.get(k, "") or "") for k in ("width", "height"))
    if width_match and height_match:
        try:
            width, height = float(width_match.group(1)), float(height_match.group(1))
            return height / width if width > 0 and height > 0 else 1.0
        except ValueError:
            return 1.0
    return 1.0


_ENTITY_DECLARATION = re.compile(rb"<!ENTITY\s[^>]*>", re.IGNORECASE)
MAX_ENTITY_DECLARATIONS = 64


def _check_entity_declarations(data: bytes) -> None:
    """Illustrator writes internal entities for its namespaces (`<!ENTITY ns_svg "http://...">`), so entities
    alone are no reason to refuse a drawing. Refused: external or parameter entities (file or network reads) and
    entities that reference other entities (the exponential "billion laughs" expansion)."""
    declarations = _ENTITY_DECLARATION.findall(data)
    if len(declarations) > MAX_ENTITY_DECLARATIONS:
        raise ImageRejected(f"SVG uses forbidden XML constructs ({len(declarations)} entity declarations)")
    for declaration in declarations:
        words = declaration.split()
        if b"&" in declaration or b"%" in words[1] or b"SYSTEM" in words or b"PUBLIC" in words:
            raise ImageRejected(
                "SVG uses forbidden XML constructs (external, parameter or nested entities: "
                f"{declaration[:80].decode('utf-8', 'replace')})"
            )


def check_svg(data: bytes):
    """Parse an SVG as safe XML and return its root element, or refuse it with a reason."""
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    _check_entity_declarations(data)
    try:
        root = ElementTree.fromstring(data, forbid_dtd=False, forbid_entities=False, forbid_external=True)
    except DefusedXmlException as exc:
        raise ImageRejected(f"SVG uses forbidden XML constructs ({type(exc).__name__})") from exc
    except ElementTree.ParseError as exc:
        raise ImageRejected(f"SVG is not well-formed XML: {exc}") from exc
    if not root.tag.endswith("svg"):
        raise ImageRejected("XML file is not an SVG")
    return root


def render_svg(data: bytes, *, max_side: int = SVG_RENDER_MAX_SIDE) -> Image.Image:
    """Render an SVG to RGBA with cairosvg, no entities, no external resources, bounded output size."""
    import cairosvg

    root = check_svg(data)
    percent_size = any(root.get(k, "").strip().endswith("%") for k in ("width", "height"))
    if percent_size or _ENTITY_DECLARATION.search(data):
        # cairosvg refuses every entity and cannot size a root of width="100%": hand it the already-expanded
        # tree, without the DTD, sized by its viewBox
        from xml.etree.ElementTree import tostring

        if percent_size and root.get("viewBox"):
            root.attrib.pop("width", None)
            root.attrib.pop("height", None)
        data = tostring(root)
    # Bound the bitmap by its long side, whichever that is, so a 1 x 10,000 viewBox cannot allocate gigabytes.
    size = {"output_width": max_side} if _svg_aspect(root) <= 1 else {"output_height": max_side}
    try:
        # unsafe=False: cairosvg forbids XML entities and fetches nothing but data: URLs (external http:// or
        # file:// references render as empty), so an SVG can neither leak requests nor read local files.
        png = cairosvg.svg2png(bytestring=data, unsafe=False, **size)
    except Exception as exc:  # cairosvg raises many types for broken drawings
        raise ImageRejected(f"SVG could not be rendered: {exc}") from exc
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit and float greyscale (scanners, GIMP, ImageMagick) scaled to 8 bits: Pillow's own conversion clips
    every value above 255, which turns a 16-bit picture white."""
    if image.mode not in HIGH_BIT_DEPTH_MODES:
        return image
    import numpy as np

    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if values.max(initial=0) <= 1.0 else 255.0  # float images are either 0-1 or 0-255
    else:
        top = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8))


def flatten_on_white(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited on white: most clip art is transparent line work."""
    image = eight_bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
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
            image: Image.Image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ImageRejected("not an image (unrecognised format)") from exc
    except Image.DecompressionBombError as exc:
        raise DecompressionBomb(f"decompression bomb guard: {exc}") from exc
    if image.format not in RASTER_FORMATS:
        raise ImageRejected(f"unsupported image format {image.format}")
    width, height = image.size
    image_format = FORMAT_NAMES.get(image.format, image.format)
    if width * height > max_pixels:
        raise DecompressionBomb(
            f"decompression bomb guard: {width}x{height} = {width * height / 1e6:.0f} MP exceeds "
            f"the {max_pixels / 1e6:.0f} MP limit"
        )
    info = dict(image.info)
    if isinstance(image, TiffImagePlugin.TiffImageFile) and 700 in image.tag_v2:
        info["xmp"] = image.tag_v2[700]  # TIFF keeps XMP in a tag, not in info
    try:
        if max_side and image_format == "JPEG":
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
