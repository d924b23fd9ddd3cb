"""Sized JPEG thumbnails of assets, rendered once through the safe decoder and cached on disk.

Only an asset id reaches this module, never a path from the request, so no arbitrary file can be served. The
cache file name carries the asset's sha256, so a re-ingested (changed) work gets a fresh thumbnail.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from django.conf import settings

from provenance.models import Asset

SIZES = (160, 320, 640)
JPEG_QUALITY = 82


class ThumbnailUnavailable(Exception):
    """The asset has no local pixels, or they cannot be decoded."""


def thumb_dir() -> Path:
    # read at call time: tests point DATA_DIR at a temporary folder
    return Path(settings.DATA_DIR) / "thumbs"


def thumb_etag(asset: Asset, size: int) -> str:
    return f'"{(asset.sha256 or str(asset.pk))[:20]}-{size}"'


def thumb_path(asset: Asset, size: int) -> Path:
    digest = (asset.sha256 or "nohash")[:16]
    return thumb_dir() / f"{asset.pk % 256:02x}" / f"{asset.pk}-{size}-{digest}.jpg"


def thumbnail_bytes(asset: Asset, size: int) -> bytes:
    """The cached thumbnail, rendering it (written to a temp name, then renamed) on first use."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}")
    path = thumb_path(asset, size)
    if path.exists():
        return path.read_bytes()
    data = _render(asset, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)  # two concurrent renders write the same bytes; either rename wins
    return data


def _render(asset: Asset, size: int) -> bytes:
    from PIL import Image

    from provenance.imaging import ImageRejected, load_rgb_path

    if not asset.local_path:
        raise ThumbnailUnavailable("this work has no local pixels")
    try:
        decoded = load_rgb_path(
            asset.local_path, max_pixels=settings.PROVENANT_MAX_IMAGE_PIXELS, max_side=size
        )
    except (OSError, ImageRejected) as exc:
        raise ThumbnailUnavailable(str(exc)) from exc
    image = decoded.image
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buffer.getvalue()
