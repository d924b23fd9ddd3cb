"""Dataset rows -> works: manifests (Parquet, CSV, JSONL) read row by row, and every layout's rows validated,
with a reason for every malformed row. Columns: url, caption, key; optional local path, width, height, licence,
author, title, exif, sha256, img2dataset's status, per-row opt-out signals (x_robots_tag, tdm_reservation,
data_mining); any other column is kept as the work's extras."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.urlnorm import normalize_url
from provenance.datasets import columns as col
from provenance.datasets.readers import Record
from provenance.ingest_items import ItemInput

BATCH_ROWS = 10_000
# img2dataset's error_message when --disallowed_header_directives refused an image
REFUSED_BY_HEADER = "disallowed by X-Robots-Tag"
# what img2dataset refuses by default; the operator names their own with --refused-directives
IMG2DATASET_DIRECTIVES = "noai, noimageai, noindex, noimageindex"


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (unknown format, unreadable file)."""


@dataclass
class RowError:
    source: str
    reason: str
    skip: bool = False  # deliberately passed over (a symbolic link), not a failure


@dataclass
class NotDownloaded:
    """A row the downloader did not fetch: not a work of the collection, counted by its status."""

    status: str
    url: str
    reason: str

    @property
    def refused_by_header(self) -> bool:
        return REFUSED_BY_HEADER in self.reason


def iter_manifest_rows(path: Path) -> Iterator[dict]:
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if suffix == ".parquet":
        yield from _iter_parquet(path)
    elif suffix in (".csv", ".tsv"):
        yield from _iter_csv(path, delimiter="\t" if suffix == ".tsv" else ",")
    elif suffix in (".jsonl", ".ndjson", ".jsonl.gz"):
        yield from _iter_jsonl(path)
    else:
        raise ManifestError(f"unknown manifest format {path.suffix!r}: use .parquet, .csv, .tsv or .jsonl")


def _iter_parquet(path: Path) -> Iterator[dict]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise ManifestError(f"unreadable Parquet file: {exc}") from exc
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        yield from batch.to_pylist()


def _iter_csv(path: Path, delimiter: str) -> Iterator[dict]:
    import csv

    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        yield from csv.DictReader(handle, delimiter=delimiter)


def _iter_jsonl(path: Path) -> Iterator[dict]:
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                row = {"__error__": f"line {number}: invalid JSON ({exc.msg})"}
            yield row if isinstance(row, dict) else {"__error__": f"line {number}: not a JSON object"}


def allowed_path(local: str, base_dir: Path, allow_roots: list[str]) -> str:
    """The real path of a row's file, relative paths taken from the manifest's folder. It must lie under one of
    the allowed roots once every symbolic link is resolved, so a link never leads out of a root."""
    resolved = (base_dir / local).resolve()
    roots = [Path(r).resolve() for r in allow_roots] or [base_dir.resolve()]
    if not any(resolved.is_relative_to(root) for root in roots):
        named = ", ".join(str(r) for r in roots)
        raise ValueError(
            f"local path {local[:100]!r} is outside the allowed roots ({named}); name its folder with --allow-root"
        )
    return str(resolved)


def record_to_item(
    record: Record, base_dir: Path, allow_roots: list[str]
) -> ItemInput | RowError | NotDownloaded:
    """Validate one row of any layout."""
    row = record.row
    label = record.source or f"row {record.number + 1}"
    if record.error or "__error__" in row:
        return RowError(label, record.error or row["__error__"], skip=record.skip)
    url = col.first(row, col.URL_COLUMNS)
    status = col.first(row, ("status",))
    if status and status != "success":
        return NotDownloaded(status, url, col.first(row, ("error_message",)) or status)
    if url and not normalize_url(url):
        return RowError(label, f"url is not an http(s) URL: {url[:100]!r}")
    local, path = col.first(row, col.PATH_COLUMNS), record.path
    has_pixels = record.data is not None or bool(path)
    if not url and not local and not has_pixels:
        return RowError(label, "neither url nor local path")
    try:
        if local and not has_pixels:
            path = allowed_path(local, base_dir, allow_roots)
        metadata = _row_metadata(row, url)
    except ValueError as exc:
        return RowError(label, str(exc))
    return ItemInput(
        source=record.source or url or local,
        path=path,
        raster_path=record.raster_path,
        metadata=metadata,
        data=record.data,
    )


def _row_metadata(row: dict, url: str) -> dict:
    return {
        "url": url,
        "key": col.first(row, ("key",)),
        "caption": col.first(row, col.CAPTION_COLUMNS),
        "title": col.first(row, ("title",)),
        "creator": col.first(row, col.AUTHOR_COLUMNS),
        "licence": col.first(row, col.LICENCE_COLUMNS),
        "width": col.optional_int(row, "width", "WIDTH"),
        "height": col.optional_int(row, "height", "HEIGHT"),
        "original_width": col.optional_int(row, "original_width"),
        "original_height": col.optional_int(row, "original_height"),
        "dataset_sha256": col.first(row, ("sha256",)).lower(),
        "exif": col.exif_of(row),
        "extra": col.extras_of(row),
        "signals": col.row_signals(row),
    }
