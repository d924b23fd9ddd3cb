"""Which layout a path is, and its shards. One reader per layout (readers.py) is chosen by what is found here."""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".webp", ".gif", ".svg", ".tif", ".tiff", ".bmp", ".avif"}
MANIFEST_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl", ".ndjson", ".jsonl.gz")
# the column img2dataset names after --encode_format (jpg by default)
IMAGE_COLUMNS = ("jpg", "jpeg", "png", "webp", "image", "img")
SHARD_DIR = re.compile(r"^\d+$")

LAYOUTS = {
    "webdataset": "webdataset tar shards (img2dataset --output_format webdataset: 00000.tar with "
    "000000001.jpg/.json/.txt members)",
    "img2dataset-files": "img2dataset --output_format files (00000/000000001.jpg + .json + .txt)",
    "img2dataset-parquet": "Parquet shards with the image bytes in a column (img2dataset --output_format parquet)",
    "hf-datasets": "Hugging Face datasets Parquet with an Image feature ({bytes, path})",
    "manifest": "a metadata manifest: Parquet, CSV, TSV or JSONL rows of url, caption... (optional local_path)",
    "folder": "a folder of image files",
}


class LayoutError(ValueError):
    """The path is not a training set we can read; the message names the layouts we know."""


@dataclass(frozen=True)
class Plan:
    layout: str
    root: Path  # sources of works are named relative to this folder
    shards: list[str]


def known_layouts() -> str:
    return "; ".join(f"{name} ({what})" for name, what in LAYOUTS.items())


def detect(paths: list[str]) -> Plan:
    """The layout and shards of one path, or of a list/glob of shards that must all be of one layout."""
    expanded = _expand(paths)
    plans = [_detect_one(Path(p)) for p in expanded]
    layouts = {plan.layout for plan in plans}
    if len(layouts) > 1:
        raise LayoutError(
            f"the paths mix layouts ({', '.join(sorted(layouts))}): ingest one layout at a time"
        )
    if len(plans) == 1:
        return plans[0]
    shards = [shard for plan in plans for shard in plan.shards]
    root = Path(os.path.commonpath([str(plan.root) for plan in plans]))
    return Plan(plans[0].layout, root, shards)


def _expand(paths: list[str]) -> list[str]:
    expanded: list[str] = []
    for path in paths:
        matches = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        if not matches or not all(Path(m).exists() for m in matches):
            raise LayoutError(f"{path} does not exist")
        expanded += [str(Path(m).resolve()) for m in matches]
    return list(dict.fromkeys(expanded))


def _detect_one(path: Path) -> Plan:
    if path.is_file():
        layout = _file_layout(path)
        if layout is None:
            raise LayoutError(f"{path.name}: not a layout we know. Known layouts: {known_layouts()}")
        return Plan(layout, path.parent, [str(path)])
    return _folder_plan(path)


def _file_layout(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(".tar"):
        return "webdataset"
    if name.endswith(".parquet"):
        return parquet_layout(path)
    if name.endswith(MANIFEST_SUFFIXES):
        return "manifest"
    return None


def _folder_plan(root: Path) -> Plan:
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    files = [Path(e.path) for e in entries if e.is_file(follow_symlinks=False)]
    if tars := [str(f) for f in files if f.name.endswith(".tar")]:
        return Plan("webdataset", root, tars)
    shard_dirs = [e.path for e in entries if e.is_dir(follow_symlinks=False) and SHARD_DIR.match(e.name)]
    if shard_dirs and any(f.name.endswith("_stats.json") or f.suffix == ".parquet" for f in files):
        return Plan("img2dataset-files", root, shard_dirs)
    tables = sorted(str(p) for p in root.rglob("*.parquet") if not p.is_symlink())
    if tables:
        layouts = {parquet_layout(Path(t)) for t in tables}
        if len(layouts) > 1:
            raise LayoutError(f"{root}: its Parquet files mix layouts ({', '.join(sorted(layouts))})")
        return Plan(layouts.pop(), root, tables)
    if manifests := [str(f) for f in files if f.name.lower().endswith(MANIFEST_SUFFIXES)]:
        return Plan("manifest", root, manifests)
    if _has_images(root):
        return Plan("folder", root, [str(root)])
    raise LayoutError(f"{root}: found no images, shards or manifests. Known layouts: {known_layouts()}")


def _has_images(root: Path) -> bool:
    for _dirpath, _dirnames, filenames in os.walk(root):
        if any(Path(name).suffix.lower() in IMAGE_SUFFIXES for name in filenames):
            return True
    return False


def parquet_layout(path: Path) -> str:
    """By the schema alone (no rows read): an Image feature in the `datasets` metadata, a binary image column,
    or neither (a metadata manifest)."""
    if image_feature_columns(path):
        return "hf-datasets"
    if image_bytes_column(path):
        return "img2dataset-parquet"
    return "manifest"


def _schema(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise LayoutError(f"{path.name}: unreadable Parquet file ({exc})") from exc


def image_feature_columns(path: Path) -> list[str]:
    """Columns that `datasets` declares as an Image feature, read with `datasets`' own schema."""
    schema = _schema(path)
    raw = (schema.metadata or {}).get(b"huggingface")
    if not raw:
        return []
    try:
        features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return []
    from datasets import Features, Image

    try:
        declared = Features.from_dict(features)
    except Exception:  # a schema from a newer datasets than ours: fall back to the declared type names
        return [
            name for name, spec in features.items() if isinstance(spec, dict) and spec.get("_type") == "Image"
        ]
    return [name for name, feature in declared.items() if isinstance(feature, Image)]


def image_bytes_column(path: Path) -> str:
    import pyarrow as pa

    schema = _schema(path)
    for name in IMAGE_COLUMNS:
        index = schema.get_field_index(name)
        if (
            index >= 0
            and pa.types.is_binary(schema.field(index).type)
            or (index >= 0 and pa.types.is_large_binary(schema.field(index).type))
        ):
            return name
    return ""
