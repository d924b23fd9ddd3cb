"""Reading one work, with no database: bytes -> hashes, size, metadata and signals, or a reason it was refused.

Runs in worker processes (the ingest fans decoding out over cores), so it returns plain data.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from provenance.datasets.readers import MAX_IMAGE_BYTES as MAX_FILE_BYTES
from provenance.hashing import compute_hashes
from provenance.imaging import ImageRejected, check_svg, is_svg, load_rgb
from provenance.metadata import FoundSignal, WorkMetadata, raster_metadata, sidecar_metadata, svg_metadata

if TYPE_CHECKING:
    from PIL import Image

SVG_MAX_SIDE = 768  # enough for hashes, embeddings (224 px) and keypoint verification
# A drawing has no native pixel size: a pre-rendered raster smaller than this (openclipart-png ships a third of its
# works as 60-100 px icons) is a thumbnail, too small for keypoints or for a larger copy's hashes to match, so the
# SVG itself is rendered (at SVG_MAX_SIDE) instead.
RASTER_MIN_SIDE = 256


@dataclass
class ItemInput:
    source: str  # relative path or URL, the asset's identity in its collection
    path: str  # absolute path of the file to read
    raster_path: str = ""  # a pre-rendered raster of an SVG (openclipart-png), decoded instead of rendering
    # from a manifest row: title, caption, creator, licence, url...
    metadata: dict = field(default_factory=dict)
    data: bytes | None = None  # the image itself, from a tar member or a Parquet column
    store_dir: str = (
        ""  # where bytes with no file of their own are kept, by sha256, for indexing and thumbnails
    )


@dataclass
class ItemResult:
    source: str
    ok: bool
    reason: str = ""
    fields: dict = field(default_factory=dict)  # Asset fields
    creator_raw: str = ""
    signals: list[dict] = field(default_factory=list)
    sha256_mismatch: bool = False  # the dataset's sha256 column names other bytes than those it holds


def read_item(item: ItemInput, max_pixels: int) -> ItemResult:
    try:
        return _read_item(item, max_pixels)
    except ImageRejected as exc:
        return ItemResult(item.source, ok=False, reason=str(exc))
    except OSError as exc:
        return ItemResult(item.source, ok=False, reason=f"unreadable file: {exc.strerror or exc}")
    except Exception as exc:  # one strange file must never stop a run of thousands
        return ItemResult(item.source, ok=False, reason=f"unexpected {type(exc).__name__}: {exc}")


def _item_bytes(item: ItemInput) -> bytes:
    if item.data is not None:
        if len(item.data) > MAX_FILE_BYTES:
            raise ImageRejected(f"image larger than {MAX_FILE_BYTES // 2**20} MB")
        return item.data
    path = Path(item.path)
    if path.is_symlink():
        raise ImageRejected("symbolic link: not followed")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ImageRejected(f"file larger than {MAX_FILE_BYTES // 2**20} MB")
    return path.read_bytes()


def _read_item(item: ItemInput, max_pixels: int) -> ItemResult:
    data = _item_bytes(item)
    decoded = _decode(data, item.raster_path, max_pixels)
    meta = (
        svg_metadata(data) if decoded.format == "SVG" else raster_metadata(data, decoded.format, decoded.info)
    )
    if item.data is None:
        meta.merge(sidecar_metadata(Path(item.path)))
    meta.merge(_manifest_metadata(item.metadata))
    sha256 = hashlib.sha256(data).hexdigest()
    if decoded.from_raster:
        local_path = item.raster_path
    else:
        local_path = (
            item.path if item.data is None else keep_bytes(data, sha256, decoded.format, item.store_dir)
        )
    phash, pdq, pdq_quality = compute_hashes(decoded.image)
    fields = {
        "local_path": local_path,
        "sha256": sha256,
        "byte_size": len(data),
        "width": decoded.width,
        "height": decoded.height,
        "format": decoded.format,
        "phash": phash,
        "pdq": pdq,
        "pdq_quality": pdq_quality,
        **_text_fields(meta),
        **_dataset_fields(item.metadata),
    }
    claimed = item.metadata.get("dataset_sha256", "")
    if claimed and claimed != sha256:
        fields["extra"]["dataset_sha256"] = claimed
    return ItemResult(
        item.source,
        ok=True,
        fields=fields,
        creator_raw=meta.creator,
        signals=_signals(meta),
        sha256_mismatch=bool(claimed) and claimed != sha256,
    )


def keep_bytes(data: bytes, sha256: str, image_format: str, store_dir: str) -> str:
    """The image as a file of its own (content-addressed, written once, renamed into place so a crash never
    leaves half a file): everything that reads pixels later (index, thumbnails, C2PA) reads files."""
    suffix = {"JPEG": ".jpg", "SVG": ".svg"}.get(image_format, f".{image_format.lower()}")
    target = Path(store_dir) / sha256[:2] / f"{sha256}{suffix}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f"{target.name}.{os.getpid()}.part")
        part.write_bytes(data)
        os.replace(part, target)
    return str(target)


def _dataset_fields(row: dict) -> dict:
    """What a dataset row adds to a work: its URL and own key, the size it was published at, EXIF, other
    columns."""
    return {
        "url": row.get("url", ""),
        "key": str(row.get("key") or "")[:300],
        "original_width": row.get("original_width"),
        "original_height": row.get("original_height"),
        "exif": row.get("exif") or {},
        "extra": dict(row.get("extra") or {}),
    }


@dataclass
class _Decoded:
    image: Image.Image
    format: str
    width: int
    height: int
    info: dict
    from_raster: bool


def _decode(data: bytes, raster_path: str, max_pixels: int) -> _Decoded:
    """Pixels of a work. An SVG with a pre-rendered raster (openclipart-png) uses the raster, which is faster
    and sidesteps cairosvg's gaps; the SVG is still checked as safe XML, and rendered if the raster is refused
    (one openclipart PNG is a 623-megapixel rendering of a small drawing) or is a thumbnail (RASTER_MIN_SIDE)."""
    raster = None
    if raster_path and is_svg(data):
        check_svg(data)
        try:
            raster = load_rgb(Path(raster_path).read_bytes(), max_pixels=max_pixels, max_side=SVG_MAX_SIDE)
        except (ImageRejected, OSError):
            pass
        if raster is not None and max(raster.width, raster.height) >= RASTER_MIN_SIDE:
            return _Decoded(raster.image, "SVG", raster.width, raster.height, {}, True)
    try:
        decoded = load_rgb(data, max_pixels=max_pixels, max_side=SVG_MAX_SIDE)
    except ImageRejected:
        if raster is None:
            raise
        # the drawing cannot be rendered: its thumbnail is better than nothing
        return _Decoded(raster.image, "SVG", raster.width, raster.height, {}, True)
    return _Decoded(decoded.image, decoded.format, decoded.width, decoded.height, decoded.info, False)


def _manifest_metadata(row: dict) -> WorkMetadata:
    return WorkMetadata(
        creator=row.get("creator", ""),
        title=row.get("title", ""),
        description=row.get("caption", ""),
        licence=row.get("licence", ""),
        url=row.get("url", ""),
        signals=[FoundSignal(**s) for s in row.get("signals", [])],
    )


def _text_fields(meta: WorkMetadata) -> dict:
    return {
        "title": meta.title[:500],
        "caption": meta.description,
        "keywords": [k[:200] for k in meta.keywords[:100]],
        "licence": meta.licence[:500],
        "rights": meta.rights[:1000],
        "creator_raw": meta.creator[:500],
    }


def _signals(meta: WorkMetadata) -> list[dict]:
    return [asdict(s) for s in meta.signals]


def url_only_result(item: ItemInput) -> ItemResult:
    """A manifest row without local pixels: recorded by URL, hashes come later (or never)."""
    meta = _manifest_metadata(item.metadata)
    fields = {**_text_fields(meta), **_dataset_fields(item.metadata), "url_only": True}
    for name in ("width", "height"):
        if item.metadata.get(name) is not None:
            fields[name] = item.metadata[name]
    return ItemResult(item.source, ok=True, fields=fields, creator_raw=meta.creator, signals=_signals(meta))
