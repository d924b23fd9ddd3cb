"""Publishing a build: assemble a temporary folder, fsync everything, then one os.rename makes it visible.

The folder holds data/part-NNNNN.parquet, removals.parquet, stats.json and manifest.json (SHA-256 of every
file). Nothing in it depends on the clock or the build id, so the same inputs give the same bytes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from training_filter.pipeline.checksums import file_sha256, recorded_sha256
from training_filter.pipeline.shard import REMOVAL_SCHEMA, fsync_path, writer_options


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def assemble(*, work_dir: Path, shard_count: int, stats: dict, params: dict, final_dir: Path) -> str:
    """Build the published folder from the shard outputs in `work_dir`; returns the manifest.json SHA-256.

    Idempotent: if `final_dir` already exists (a crash after the rename), its manifest is trusted as is."""
    if (final_dir / "manifest.json").exists():
        return file_sha256(final_dir / "manifest.json")
    tmp = final_dir.with_name(f".{final_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a finaliser killed half way
    (tmp / "data").mkdir(parents=True)
    for index in range(shard_count):
        _link_or_copy(work_dir / f"part-{index:05d}.parquet", tmp / "data" / f"part-{index:05d}.parquet")
    _concat_removals(work_dir, shard_count, tmp / "removals.parquet")
    write_json(tmp / "stats.json", stats)
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    checksums = {p.relative_to(tmp).as_posix(): _sha256(p, work_dir) for p in files}
    write_json(tmp / "manifest.json", {"format": "provenant-manifest/1", "build": params, "files": checksums})
    for path in [*files, tmp / "manifest.json"]:
        fsync_path(path)
    for folder in (tmp / "data", tmp):
        fsync_path(folder)
    os.rename(tmp, final_dir)
    fsync_path(final_dir.parent)
    return file_sha256(final_dir / "manifest.json")


def _sha256(path: Path, work_dir: Path) -> str:
    """A data part's checksum as its shard recorded it, or read now."""
    recorded = recorded_sha256(work_dir / path.name) if path.parent.name == "data" else None
    return recorded or file_sha256(path)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _concat_removals(work_dir: Path, shard_count: int, target: Path) -> None:
    with pq.ParquetWriter(target, REMOVAL_SCHEMA, **writer_options(REMOVAL_SCHEMA)) as writer:
        for index in range(shard_count):
            table = pq.read_table(work_dir / f"removed-{index:05d}.parquet")
            if table.num_rows:
                writer.write_table(table)
