"""Fixtures for manifest builds: a private manifest folder, a synthetic opt-out registry (the shape of
optout.registry.registry_rows), and img2dataset-style Parquet manifests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


@dataclass(frozen=True)
class FakeRegistryRow:
    kind: str
    key: str
    reason: str
    rule: str
    optout_id: int
    active_from: datetime | None = None


FAKE_REGISTRY: list[FakeRegistryRow] = []


def fake_registry_rows(*, as_of: datetime):
    for row in FAKE_REGISTRY:
        if row.active_from is None or row.active_from <= as_of:
            yield row


@pytest.fixture
def manifest_dir(settings, tmp_path) -> Path:
    settings.MANIFEST_DIR = tmp_path / "manifests"
    return settings.MANIFEST_DIR


@pytest.fixture
def fake_registry(settings):
    """A list to append FakeRegistryRow to; the build reads it as the opt-out registry."""
    settings.MANIFEST_REGISTRY_SOURCE = "tests.training_filter.conftest.fake_registry_rows"
    FAKE_REGISTRY.clear()
    yield FAKE_REGISTRY
    FAKE_REGISTRY.clear()


def write_manifest(path: Path, rows: list[dict], row_group_size: int = 3) -> Path:
    """An img2dataset-style input: url, caption, key, width, height, sha256, phash, license, author."""
    columns = {name: [row.get(name) for row in rows] for name in ("key", "url", "caption", "sha256", "phash")}
    columns["width"] = [row.get("width", 64) for row in rows]
    columns["height"] = [row.get("height", 64) for row in rows]
    columns["license"] = [row.get("license", "CC0") for row in rows]
    columns["author"] = [row.get("author", "someone") for row in rows]
    table = pa.table(columns).cast(
        pa.schema(
            [
                ("key", pa.string()),
                ("url", pa.string()),
                ("caption", pa.string()),
                ("sha256", pa.string()),
                ("phash", pa.int64()),
                ("width", pa.int64()),
                ("height", pa.int64()),
                ("license", pa.string()),
                ("author", pa.string()),
            ]
        )
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path
