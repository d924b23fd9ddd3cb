"""Reading a published clean manifest (a folder of Parquet shards) into training examples."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

COLUMNS = ("key", "caption", "contributor", "local_path", "asset_id")


@dataclass(frozen=True)
class TrainingExample:
    path: str
    caption: str
    contributor: str  # the credit label attribution reports
    asset_id: int | None = None
    contributor_id: int | None = None


@dataclass(frozen=True)
class ManifestSource:
    build_id: int | None
    folder: Path
    content_hash: str


def parquet_files(folder: Path) -> list[Path]:
    data = folder / "data"
    files = sorted((data if data.is_dir() else folder).glob("*.parquet"))
    return [f for f in files if f.name != "removals.parquet"]


def content_hash(folder: Path) -> str:
    """The published manifest.json's SHA-256 when there is one (it lists every file's hash), else of the shards."""
    digest = hashlib.sha256()
    manifest = folder / "manifest.json"
    for path in [manifest] if manifest.exists() else parquet_files(folder):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def manifest_read(folder: Path) -> list[TrainingExample]:
    import pyarrow.parquet as pq

    examples = []
    for path in parquet_files(folder):
        table = pq.read_table(path)
        cols = {c: table.column(c).to_pylist() if c in table.column_names else None for c in COLUMNS}
        for i in range(table.num_rows):
            local = cols["local_path"][i] if cols["local_path"] else None
            if not local:
                continue  # nothing to train on without pixels
            asset = cols["asset_id"][i] if cols["asset_id"] else None
            examples.append(
                TrainingExample(
                    path=local,
                    caption=(cols["caption"][i] if cols["caption"] else "") or "",
                    contributor=(cols["contributor"][i] if cols["contributor"] else "") or "unknown",
                    asset_id=int(asset) if asset is not None else None,
                )
            )
    return examples


def manifest_write(folder: Path, examples: list[TrainingExample]) -> None:
    """A minimal manifest folder (tests, benchmarks): the columns this reader uses."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "data").mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "key": [f"{i:09d}" for i in range(len(examples))],
            "caption": [e.caption for e in examples],
            "contributor": [e.contributor for e in examples],
            "local_path": [e.path for e in examples],
            "asset_id": pa.array([e.asset_id for e in examples], pa.int64()),
        }
    )
    pq.write_table(table, folder / "data" / "part-00000.parquet")
