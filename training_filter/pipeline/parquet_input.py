"""External img2dataset-style Parquet manifests: a file, a folder of files, or a pyarrow filesystem URI.
Split by row groups (never inside one), read as a stream of batches, hashed for the build record."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from training_filter.pipeline.shard import conform

READ_CHUNK = 8 << 20


def _filesystem(ref: str) -> tuple[pafs.FileSystem, str]:
    if "://" in ref:
        return pafs.FileSystem.from_uri(ref)
    return pafs.LocalFileSystem(), ref


def list_files(ref: str) -> tuple[pafs.FileSystem, list[str]]:
    fs, path = _filesystem(ref)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(ref)
    if info.type == pafs.FileType.File:
        return fs, [path]
    selector = pafs.FileSelector(path, recursive=True)
    files = sorted(i.path for i in fs.get_file_info(selector) if i.is_file and i.path.endswith(".parquet"))
    if not files:
        raise FileNotFoundError(f"no .parquet files under {ref}")
    return fs, files


def content_hash(ref: str) -> str:
    """SHA-256 over (relative name, bytes) of every file, in name order."""
    fs, files = list_files(ref)
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.rsplit("/", 1)[-1].encode() + b"\0")
        with fs.open_input_stream(name) as stream:
            while chunk := stream.read(READ_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def plan_shards(ref: str, *, target_rows: int) -> list[dict]:
    """Shard specs of whole row groups, about `target_rows` rows each, in file then row-group order."""
    fs, files = list_files(ref)
    specs: list[dict] = []
    offset = 0
    for name in files:
        with fs.open_input_file(name) as handle:
            meta = pq.ParquetFile(handle).metadata
        current: dict | None = None
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group).num_rows
            if current is None or current["rows"] >= target_rows:
                current = {"file": name, "row_groups": [], "rows": 0, "row_offset": offset}
                specs.append(current)
            current["row_groups"].append(group)
            current["rows"] += rows
            offset += rows
    return specs


def read_shard(ref: str, spec: dict, *, batch_rows: int) -> Iterator[pa.Table]:
    fs, _ = _filesystem(ref)
    offset = spec["row_offset"]
    with fs.open_input_file(spec["file"]) as handle:
        parquet = pq.ParquetFile(handle)
        for batch in parquet.iter_batches(
            batch_size=batch_rows, row_groups=spec["row_groups"], use_threads=True
        ):
            yield conform(batch, row_offset=offset)
            offset += batch.num_rows
