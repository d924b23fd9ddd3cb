"""Reading img2dataset-style manifests (Parquet, CSV, JSONL) row by row, streaming, with a reason for every
malformed row. Columns: url, caption, key; optional local path, width, height, licence, author, title, and
per-row opt-out signals (x_robots_tag, tdm_reservation, data_mining)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.urlnorm import normalize_url
from provenance.ingest_items import ItemInput

PATH_COLUMNS = ("local_path", "path", "filepath", "file")
AUTHOR_COLUMNS = ("author", "creator", "artist")
LICENCE_COLUMNS = ("licence", "license")
BATCH_ROWS = 10_000


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (unknown format, unreadable file)."""


@dataclass
class RowError:
    source: str
    reason: str
    skip: bool = False  # deliberately passed over (a symbolic link), not a failure


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
            except ValueError as exc:
                row = {"__error__": f"line {number}: invalid JSON ({exc.msg})"}
            yield row if isinstance(row, dict) else {"__error__": f"line {number}: not a JSON object"}


def _first(row: dict, names: tuple[str, ...]) -> str:
    return next((str(row[n]).strip() for n in names if row.get(n) not in (None, "")), "")


def _optional_int(row: dict, name: str) -> int | None:
    value = row.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        raise ValueError(f"{name} is not a number: {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} is negative: {number}")
    return number


def _row_signals(row: dict) -> list[dict]:
    signals = []
    if robots := _first(row, ("x_robots_tag", "X-Robots-Tag", "x-robots-tag")):
        signals.append({"kind": "x_robots_tag", "value": robots, "location": "manifest column X-Robots-Tag"})
    if tdm := _first(row, ("tdm_reservation", "tdm-reservation")):
        signals.append({"kind": "tdmrep", "value": f"tdm-reservation: {tdm}", "location": "manifest column"})
    if dmi := _first(row, ("data_mining", "DataMining")):
        code = dmi.rstrip("/").rsplit("/", 1)[-1]
        signals.append({"kind": "iptc_data_mining", "value": code, "location": "manifest column data_mining"})
    return signals


def row_to_item(row: dict, number: int, base_dir: Path) -> ItemInput | RowError:
    """Validate one row. A local path must stay inside the manifest's folder (no `../` or absolute escapes)."""
    label = f"row {number}"
    if "__error__" in row:
        return RowError(label, row["__error__"])
    url = _first(row, ("url",))
    if url and not normalize_url(url):
        return RowError(label, f"url is not an http(s) URL: {url[:100]!r}")
    local = _first(row, PATH_COLUMNS)
    if not url and not local:
        return RowError(label, "neither url nor local path")
    path = ""
    if local:
        resolved = (base_dir / local).resolve()
        if not resolved.is_relative_to(base_dir.resolve()):
            return RowError(label, f"local path escapes the manifest folder: {local[:100]!r}")
        path = str(resolved)
    try:
        width, height = _optional_int(row, "width"), _optional_int(row, "height")
    except ValueError as exc:
        return RowError(label, str(exc))
    metadata = {
        "url": url,
        "key": _first(row, ("key",)),
        "caption": _first(row, ("caption", "text")),
        "title": _first(row, ("title",)),
        "creator": _first(row, AUTHOR_COLUMNS),
        "licence": _first(row, LICENCE_COLUMNS),
        "width": width,
        "height": height,
        "signals": _row_signals(row),
    }
    return ItemInput(source=url or local, path=path, metadata=metadata)
