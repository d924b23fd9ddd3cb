"""External img2dataset-style Parquet manifests: a file, a folder of files, or a pyarrow filesystem URI.
Split by row groups (never inside one), read as a stream of batches, hashed for the build record.

Read as operators have them: img2dataset's shard Parquet (beside its tars or folders, or with the image bytes in
a column, which is never read here), `datasets` Parquet, LAION-style metadata. Only the columns a manifest uses
are read; rows img2dataset did not download are not in the training set. Every column is checked before use: a
bad one is an InputError naming the file, the column and the first bad row."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

# per-row opt-out signal columns, read as the ingest reads them and carried to the build's signal rules
from provenance.datasets.columns import SIGNAL_COLUMNS
from training_filter.pipeline.shard import ALIASES, OUTPUT_SCHEMA, conform

READ_CHUNK = 8 << 20
HEX16 = re.compile(r"^[0-9a-fA-F]{16}$")
HEX_DIGITS = "0123456789abcdefABCDEF"
INTEGER_COLUMNS = ("width", "height")


class InputError(ValueError):
    """A column of the input manifest cannot be used: its message names the file, the column and the row."""

    def __init__(self, file: str, column: str, row: int, why: str):
        super().__init__(f"{file}: column {column!r}, row {row}: {why}")


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
        columns = used_columns(parquet.schema_arrow)
        for batch in parquet.iter_batches(
            batch_size=batch_rows, row_groups=spec["row_groups"], columns=columns, use_threads=True
        ):
            checked = checked_batch(pa.Table.from_batches([batch]), spec["file"], offset)
            yield conform(downloaded(checked), row_offset=offset)
            offset += batch.num_rows


def used_columns(schema: pa.Schema) -> list[str]:
    """The columns a manifest build reads: never an image column (img2dataset's jpg, a datasets Image)."""
    wanted = {alias for name in OUTPUT_SCHEMA.names for alias in ALIASES.get(name, (name,))}
    wanted |= {"status", *SIGNAL_COLUMNS}
    return [name for name in schema.names if name in wanted]


def downloaded(table: pa.Table) -> pa.Table:
    """img2dataset lists the rows it failed to download too: they are not in the training set."""
    if "status" not in table.column_names:
        return table
    return table.filter(pc.fill_null(pc.equal(table.column("status"), "success"), False))


def checked_batch(table: pa.Table, file: str, offset: int) -> pa.Table:
    """The batch with pHash as a signed int64 and every typed column checked, or an InputError."""
    if "phash" in table.column_names:
        table = table.set_column(
            table.column_names.index("phash"), "phash", phash_int64(table.column("phash"), file, offset)
        )
    integer_columns = [alias for name in INTEGER_COLUMNS for alias in ALIASES.get(name, (name,))]
    for name in (n for n in integer_columns if n in table.column_names):
        _check_integer(table.column(name), file, name, offset)
    if "sha256" in table.column_names:
        _check_hex(table.column("sha256"), file, "sha256", offset, digits=64)
    return table


def phash_int64(column: pa.ChunkedArray, file: str, offset: int) -> pa.Array:
    """A 64-bit pHash as the signed int64 the registry holds: from int64, from uint64 (same bits), or from the
    16 hex digits imagehash prints."""
    column = column.combine_chunks()
    if pa.types.is_null(column.type) or pa.types.is_int64(column.type):
        return pc.cast(column, pa.int64())
    if pa.types.is_uint64(column.type):
        return pc.cast(column, pa.int64(), safe=False)  # reinterprets the bits: 2**64 - 1 -> -1
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return _phash_from_hex(column, file, offset)
    if pa.types.is_integer(column.type):
        return _cast_checked(column, pa.int64(), file, "phash", offset)
    raise InputError(file, "phash", offset + 1, f"type {column.type} is not a 64-bit pHash "
                     "(use int64, uint64 or 16 hex digits)")  # fmt: skip


def _phash_from_hex(column: pa.Array, file: str, offset: int) -> pa.Array:
    values = column.to_pylist()
    for row, value in enumerate(values):
        if value is not None and not HEX16.match(value):
            raise InputError(file, "phash", offset + row + 1, f"{value[:40]!r} is not 16 hex digits")
    unsigned = [None if v is None else int(v, 16) for v in values]
    return pa.array(
        [None if v is None else v - (1 << 64) if v >= 1 << 63 else v for v in unsigned], pa.int64()
    )


def _check_integer(column: pa.ChunkedArray, file: str, name: str, offset: int) -> None:
    if pa.types.is_integer(column.type) or pa.types.is_null(column.type):
        return
    _cast_checked(column.combine_chunks(), pa.int32(), file, name, offset)


def _cast_checked(column: pa.Array, dtype: pa.DataType, file: str, name: str, offset: int) -> pa.Array:
    try:
        return pc.cast(column, dtype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for row, value in enumerate(column.to_pylist()):
        try:
            pc.cast(pa.array([value], column.type), dtype)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InputError(file, name, offset + row + 1, f"{str(value)[:40]!r} is not an integer") from None
    raise InputError(file, name, offset + 1, f"type {column.type} cannot be read as {dtype}")


def _check_hex(column: pa.ChunkedArray, file: str, name: str, offset: int, *, digits: int) -> None:
    """Every value `digits` hex digits long, or null. Hex digits trimmed off leave nothing: a quarter of the time
    of the regex ^[0-9a-fA-F]{64}$ (about two seconds of CPU per 10M rows)."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        if pa.types.is_null(column.type):
            return
        raise InputError(file, name, offset + 1, f"type {column.type} is not text")
    only_hex = pc.equal(pc.binary_length(pc.ascii_ltrim(column, HEX_DIGITS)), 0)
    good = pc.and_(pc.equal(pc.binary_length(column), digits), only_hex)
    bad = pc.invert(pc.fill_null(good, True))
    rows = pc.indices_nonzero(bad.combine_chunks() if isinstance(bad, pa.ChunkedArray) else bad)
    if len(rows):
        first = rows[0].as_py()
        value = str(column[first].as_py())[:70]
        raise InputError(file, name, offset + first + 1, f"{value!r} is not {digits} hex digits")


def row_signals(ref: str) -> Iterator[tuple[str, str, dict]]:
    """(key, url, {column: value}) of every downloaded row with a per-row signal column set, in row order; keys
    made up from the row number as `conform` does when the input has none."""
    fs, files = list_files(ref)
    offset = 0
    for name in files:
        with fs.open_input_file(name) as handle:
            parquet = pq.ParquetFile(handle)
            present = [c for c in SIGNAL_COLUMNS if c in parquet.schema_arrow.names]
            if not present:  # nothing to read: the usual img2dataset file has no signal columns
                offset += parquet.metadata.num_rows
                continue
            columns = [
                c for c in ("key", "url", "URL", "status") if c in parquet.schema_arrow.names
            ] + present
            for batch in parquet.iter_batches(batch_size=65_536, columns=columns):
                yield from _signal_rows_of(downloaded(pa.Table.from_batches([batch])), present, offset)
                offset += batch.num_rows


def _signal_rows_of(table: pa.Table, present: list[str], offset: int) -> Iterator[tuple[str, str, dict]]:
    url_column = next((c for c in ("url", "URL") if c in table.column_names), None)
    for number, row in enumerate(table.to_pylist()):
        signals = {c: str(row[c]) for c in present if row.get(c) not in (None, "")}
        if signals:
            key = row.get("key") or f"{offset + number:09d}"
            yield str(key), (row.get(url_column) or "") if url_column else "", signals
