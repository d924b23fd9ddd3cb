"""One streaming reader per layout: rows of a shard as Records, in a fixed order, starting at a row number (a
resumed shard skips what it has done). Never a whole shard in memory: tars are read member by member, Parquet in
small batches, folders file by file."""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from provenance.datasets.layouts import IMAGE_SUFFIXES, image_bytes_column, image_feature_columns

MAX_IMAGE_BYTES = 200 * 1024 * 1024
# rows of image bytes decoded at a time from Parquet: a few MB, whatever the shard's size
PARQUET_IMAGE_BATCH = 16
PARQUET_BUFFER = 1 << 20
# webdataset's rule (base_plus_ext): the key is the member name up to the first dot of its last component
_KEY_SPLIT = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")


@dataclass
class Record:
    number: int  # position in the shard, from 0
    source: str  # the work's identity in its collection
    row: dict = field(default_factory=dict)  # the dataset's columns for this row
    data: bytes | None = None  # image bytes from a tar member or a column
    path: str = ""  # an image file on disk
    raster_path: str = ""
    error: str = ""  # why this row cannot be read at all
    skip: bool = False  # passed over on purpose (a symbolic link), not a failure


def iter_records(layout: str, shard: str, root: Path, start: int, raster_root: str = "") -> Iterator[Record]:
    readers = {
        "webdataset": _tar_records,
        "img2dataset-files": _files_records,
        "img2dataset-parquet": _parquet_image_records,
        "hf-datasets": _hf_records,
        "manifest": _manifest_records,
    }
    if layout == "folder":
        return _folder_records(Path(shard), start, raster_root)
    return readers[layout](Path(shard), root, start)


def shard_prefix(shard: Path, root: Path) -> str:
    """`00000` for `root/00000.tar`, `root/00000.parquet` and `root/00000/`: the same img2dataset download in
    any of its formats names its works alike, so ingesting it twice adds nothing."""
    relative = shard.relative_to(root) if shard.is_relative_to(root) else Path(shard.name)
    return str(relative.with_suffix("") if shard.is_file() else relative)


def _sample_row(members: dict[str, bytes]) -> dict:
    row = {}
    if "json" in members:
        try:
            parsed = json.loads(members["json"])
            row = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            row = {"__error__": "its .json is not valid JSON"}
    if "txt" in members and not row.get("caption"):
        row["caption"] = members["txt"].decode("utf-8", "replace").strip()
    return row


def _tar_records(shard: Path, root: Path, start: int) -> Iterator[Record]:
    prefix = shard_prefix(shard, root)
    count = 0
    for number, key, members, image_error in _tar_samples(shard, start):
        count = number + 1
        if members is not None:
            yield _sample_record(number, f"{prefix}/{key.rsplit('/', 1)[-1]}", members, image_error)
    yield from _not_downloaded_rows(shard.with_suffix(".parquet"), count, start)


def _tar_samples(shard: Path, start: int) -> Iterator[tuple[int, str, dict[str, bytes] | None, str]]:
    """(number, key, {suffix: bytes}, error) per sample, streaming ("r|"): one member in memory at a time.
    Samples before `start` come with no members: they are passed over unread."""
    members: dict[str, bytes] | None = None
    key: str | None = None
    number, error = -1, ""
    with tarfile.open(shard, mode="r|*") as stream:
        for info in stream:
            match = _KEY_SPLIT.match(info.name)
            if not info.isreg() or not match or "/__" in f"/{info.name}":
                continue
            if match.group(1) != key:
                if key is not None:
                    yield number, key, members, error
                number, key, error = number + 1, match.group(1), ""
                members = {} if number >= start else None
            if members is None:
                continue
            if info.size > MAX_IMAGE_BYTES:
                error = f"{info.name}: larger than {MAX_IMAGE_BYTES // 2**20} MB"
                continue
            handle = stream.extractfile(info)
            members[match.group(2).lower()] = handle.read() if handle else b""
    if key is not None:
        yield number, key, members, error


def _sample_record(number: int, source: str, members: dict[str, bytes], error: str) -> Record:
    row = _sample_row(members)
    images = [s for s in members if f".{s.rsplit('.', 1)[-1]}" in IMAGE_SUFFIXES]
    data = members[images[0]] if images else None
    if not error and data is None and row.get("status", "success") == "success":
        error = "no image member"
    return Record(number, source, row=row, data=data, error=error)


def _files_records(shard: Path, root: Path, start: int) -> Iterator[Record]:
    prefix = shard_prefix(shard, root)
    groups: dict[str, dict[str, Path]] = {}
    for entry in sorted(os.scandir(shard), key=lambda e: e.name):
        stem, _, suffix = entry.name.partition(".")
        groups.setdefault(stem, {})[suffix.lower()] = Path(entry.path)
    number = 0
    for stem, files in groups.items():
        if number >= start:
            yield _file_sample(number, f"{prefix}/{stem}", files)
        number += 1
    yield from _not_downloaded_rows(shard.with_suffix(".parquet"), number, start)


def _file_sample(number: int, source: str, files: dict[str, Path]) -> Record:
    members: dict[str, bytes] = {
        s: files[s].read_bytes() for s in ("json", "txt") if s in files and not files[s].is_symlink()
    }
    row = _sample_row(members)
    images = [p for s, p in files.items() if f".{s.rsplit('.', 1)[-1]}" in IMAGE_SUFFIXES]
    if not images:
        return Record(number, source, row=row, error="no image file")
    return Record(number, source, row=row, path=str(images[0]))


def _not_downloaded_rows(status_parquet: Path, number: int, start: int) -> Iterator[Record]:
    """img2dataset keeps only downloaded images in tars and folders; the shard's Parquet beside them lists every
    row with its status. The rows it failed to download are read from there, to be counted."""
    if not status_parquet.is_file():
        return
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(status_parquet)
    if "status" not in parquet.schema_arrow.names:
        return
    columns = [n for n in parquet.schema_arrow.names if n not in (image_bytes_column(status_parquet),)]
    for batch in parquet.iter_batches(batch_size=10_000, columns=columns):
        failed = batch.filter(pc.not_equal(batch.column("status"), "success"))
        for row in failed.to_pylist():
            if number >= start:
                yield Record(number, f"{row.get('key') or number}", row=row)
            number += 1


def _parquet_batches(path: Path, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    # buffered stream reads with no pre-buffering: pages come in as they are decoded, not a row group at once
    parquet = pq.ParquetFile(path, buffer_size=PARQUET_BUFFER, pre_buffer=False)
    return parquet.iter_batches(batch_size=PARQUET_IMAGE_BATCH, columns=columns, use_threads=False)


def _parquet_image_records(shard: Path, root: Path, start: int) -> Iterator[Record]:
    prefix, column = shard_prefix(shard, root), image_bytes_column(shard)
    for number, row in _rows_from(shard, start):
        data = row.pop(column, None)
        yield Record(number, f"{prefix}/{row.get('key') or number}", row=row, data=data)


def _rows_from(path: Path, start: int) -> Iterator[tuple[int, dict]]:
    number = 0
    for batch in _parquet_batches(path):
        if number + batch.num_rows <= start:
            number += batch.num_rows
            continue
        for row in batch.to_pylist():
            if number >= start:
                yield number, row
            number += 1


def _hf_records(shard: Path, root: Path, start: int) -> Iterator[Record]:
    prefix, column = shard_prefix(shard, root), image_feature_columns(shard)[0]
    for number, row in _rows_from(shard, start):
        image = row.pop(column, None) or {}
        row.setdefault("key", str(row.get("id") or number))
        record = Record(number, f"{prefix}/{row['key']}", row=row, data=image.get("bytes"))
        if record.data is None and image.get("path"):
            row.setdefault("local_path", image["path"])  # checked against the allowed roots like any path
        elif record.data is None:
            record.error = f"{column} has neither bytes nor a path"
        yield record


def _manifest_records(shard: Path, root: Path, start: int) -> Iterator[Record]:
    from provenance.manifests import iter_manifest_rows

    for number, row in enumerate(iter_manifest_rows(shard)):
        if number >= start:
            yield Record(number, "", row=row)


def _folder_records(root: Path, start: int, raster_root: str) -> Iterator[Record]:
    """Every image file under `root`, sorted (a resumed run walks the same way). Symbolic links are never
    followed: they could point outside the folder, and openclipart's are duplicate entries."""
    number = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES or name.startswith("."):
                continue
            if number >= start:
                yield _folder_record(number, path, root, raster_root)
            number += 1


def _folder_record(number: int, path: Path, root: Path, raster_root: str) -> Record:
    relative = str(path.relative_to(root))
    if path.is_symlink():
        return Record(number, relative, error="symbolic link: not followed", skip=True)
    raster = ""
    if raster_root and path.suffix.lower() == ".svg":
        candidate = Path(raster_root) / Path(relative).with_suffix(".png")
        raster = str(candidate) if candidate.is_file() and not candidate.is_symlink() else ""
    return Record(number, relative, path=str(path), raster_path=raster)


def count_rows(layout: str, shard: str) -> int | None:
    """Rows in a shard when it is cheap to know (Parquet metadata, a file count); None for a tar."""
    import pyarrow.parquet as pq

    path = Path(shard)
    if layout in ("img2dataset-parquet", "hf-datasets") or (
        layout == "manifest" and path.suffix == ".parquet"
    ):
        return pq.ParquetFile(path).metadata.num_rows
    if layout == "webdataset" and path.with_suffix(".parquet").is_file():
        return pq.ParquetFile(path.with_suffix(".parquet")).metadata.num_rows
    if layout == "img2dataset-files" and path.with_suffix(".parquet").is_file():
        return pq.ParquetFile(path.with_suffix(".parquet")).metadata.num_rows
    if layout == "folder":
        return sum(
            1
            for _d, _s, names in os.walk(path)
            for n in names
            if Path(n).suffix.lower() in IMAGE_SUFFIXES and not n.startswith(".")
        )
    return None
