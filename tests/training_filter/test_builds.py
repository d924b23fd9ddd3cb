"""Builds end to end with eager Celery: what leaves the manifest and why, reproducibility, atomic publishing,
exclusive shard claims, diffs, loading the result with pyarrow.dataset and datasets."""

import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from django.utils import timezone

from core.models import Lease
from tests.training_filter.conftest import FakeRegistryRow, write_manifest
from training_filter import selectors, services
from training_filter.models import ManifestBuild, ManifestShard

pytestmark = pytest.mark.django_db

SHA_A = "a" * 64
ROWS = [
    {
        "key": "k0",
        "url": "https://art.example.org/works/Cat.png",
        "caption": "a cat",
        "sha256": "0" * 64,
        "phash": 1,
    },
    {"key": "k1", "url": "http://WWW.Art.Example.org/works/Cat.png/", "caption": "same cat, other spelling"},
    {"key": "k2", "url": "https://art.example.org/works/cat.png", "caption": "lower-case path: another work"},
    {"key": "k3", "url": "https://cdn.blocked.net/x/1.jpg", "caption": "subdomain of an opted-out domain"},
    {"key": "k4", "url": "https://notblocked.net/1.jpg", "caption": "similar name, other domain"},
    {
        "key": "k5",
        "url": "https://files.example.com/dup.jpg",
        "caption": "same bytes",
        "sha256": SHA_A.upper(),
    },
    {"key": "k6", "url": "https://files.example.com/near.jpg", "caption": "near copy", "phash": 0b1011},
    {"key": "k7", "url": "https://files.example.com/far.jpg", "caption": "far from it", "phash": 0b11111111},
    {"key": "k8", "url": "https://files.example.com/ok.jpg", "caption": "kept"},
]


@pytest.fixture
def registry(fake_registry):
    fake_registry += [
        FakeRegistryRow("url", "art.example.org/works/Cat.png", "artist request", "url", 11),
        FakeRegistryRow("domain", "blocked.net", "whole site", "domain", 12),
        FakeRegistryRow("sha256", SHA_A, "file hash", "sha256", 13),
        FakeRegistryRow("phash", str(0b0001), "perceptual hash", "phash", 14),
    ]
    return fake_registry


@pytest.fixture
def manifest(tmp_path) -> Path:
    return write_manifest(tmp_path / "input" / "manifest.parquet", ROWS)


def build_parquet(manifest: Path, **kwargs) -> ManifestBuild:
    build = services.manifest_build_create(input_path=str(manifest), **kwargs)
    build.refresh_from_db()
    return build


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_opted_out_rows_leave_the_manifest_and_the_removal_list_names_why(
    manifest_dir, registry, manifest, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        build = services.manifest_build_create(input_path=str(manifest))
    build.refresh_from_db()
    assert build.status == "published", build.error
    out = Path(build.output_path)
    kept = pads.dataset(out / "data").to_table().column("key").to_pylist()
    assert kept == ["k2", "k4", "k7", "k8"]
    removals = pq.read_table(out / "removals.parquet").to_pylist()
    why = {r["key"]: (r["reason"], r["optout_id"]) for r in removals}
    assert why == {
        "k0": ("url", "11"),
        "k1": ("url", "11"),
        "k3": ("domain", "12"),
        "k5": ("sha256", "13"),
        "k6": ("phash", "14"),
    }
    stats = json.loads((out / "stats.json").read_text())
    assert stats["rows_in"] == 9 and stats["rows_out"] == 4
    assert stats["removed_by_reason"] == {"domain": 1, "phash": 1, "sha256": 1, "url": 2}
    assert build.rows_out == 4 and build.shards_done == build.shards_total


def test_every_published_file_is_listed_with_its_sha256(manifest_dir, registry, manifest):
    build = build_parquet(manifest)
    services.manifest_build_prepare(build_id=build.pk)
    for shard in ManifestShard.objects.filter(build=build):
        services.manifest_shard_run(build_id=build.pk, index=shard.index, worker="w")
    build = services.manifest_build_finalise(build_id=build.pk)
    out = Path(build.output_path)
    listed = json.loads((out / "manifest.json").read_text())["files"]
    assert listed == {k: v for k, v in tree_digest(out).items() if k != "manifest.json"}
    assert hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest() == build.content_hash


def run_build(manifest: Path, as_of) -> ManifestBuild:
    build = build_parquet(manifest, as_of=as_of, enqueue=False)
    from training_filter.tasks import manifest_build_run

    manifest_build_run.apply(args=[build.pk])
    build.refresh_from_db()
    return build


def test_same_inputs_give_byte_identical_output(manifest_dir, registry, manifest):
    as_of = timezone.now()
    first, second = run_build(manifest, as_of), run_build(manifest, as_of)
    assert first.output_path != second.output_path
    assert tree_digest(Path(first.output_path)) == tree_digest(Path(second.output_path))
    assert first.content_hash == second.content_hash


def test_an_optout_after_the_cutoff_does_not_apply(manifest_dir, registry, manifest):
    registry.append(FakeRegistryRow("url", "files.example.com/ok.jpg", "later", "url", 20, timezone.now()))
    build = run_build(manifest, timezone.now() - timedelta(hours=1))
    assert "k8" in pads.dataset(Path(build.output_path) / "data").to_table().column("key").to_pylist()


def test_a_crash_while_publishing_leaves_nothing_visible_and_a_retry_publishes(
    manifest_dir, registry, manifest, monkeypatch
):
    build = build_parquet(manifest, enqueue=False)
    for index in services.manifest_build_prepare(build_id=build.pk):
        services.manifest_shard_run(build_id=build.pk, index=index, worker="w")

    def crash(*args):
        raise OSError("power cut")

    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError):
        services.manifest_build_finalise(build_id=build.pk)
    assert not services.published_dir(build).exists()
    build.refresh_from_db()
    assert build.status == "finalising" and not build.output_path
    monkeypatch.undo()
    build = services.manifest_build_finalise(build_id=build.pk)
    assert build.status == "published"
    assert not any(p.name.endswith(".tmp") for p in Path(manifest_dir).iterdir())


def test_finalising_twice_changes_nothing(manifest_dir, registry, manifest):
    build = run_build(manifest, timezone.now())
    before = tree_digest(Path(build.output_path))
    again = services.manifest_build_finalise(build_id=build.pk)
    assert again.content_hash == build.content_hash
    assert tree_digest(Path(build.output_path)) == before


def test_a_shard_is_claimed_by_one_worker_at_a_time_and_taken_over_once_its_holder_stops_heartbeating(
    manifest_dir, registry, manifest
):
    build = build_parquet(manifest, enqueue=False)
    services.manifest_build_prepare(build_id=build.pk)
    assert services.manifest_shard_claim(build_id=build.pk, index=0, worker="a")
    assert not services.manifest_shard_claim(build_id=build.pk, index=0, worker="b")
    assert services.manifest_shard_run(build_id=build.pk, index=0, worker="b") == "busy"
    # a renewal that stopped 31 s ago (three 10 s heartbeats missed): the lease is dead
    Lease.objects.filter(kind=services.SHARD).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.manifest_shard_run(build_id=build.pk, index=0, worker="b") == "done"
    lease = Lease.objects.get(kind=services.SHARD, unit=services.shard_unit(build.pk, 0))
    assert (lease.state, lease.attempts, lease.holder) == ("done", 2, "b")
    assert services.manifest_shard_run(build_id=build.pk, index=0, worker="a") == "already-done"


def test_a_published_manifest_loads_with_pyarrow_dataset_and_hf_datasets(
    manifest_dir, registry, manifest, monkeypatch, tmp_path
):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    build = run_build(manifest, timezone.now())
    data = Path(build.output_path) / "data"
    table = pads.dataset(data).to_table()
    assert table.num_rows == 4
    assert {"key", "url", "caption", "width", "height", "sha256"} <= set(table.column_names)
    import datasets

    loaded = datasets.load_dataset(
        "parquet",
        data_files=sorted(str(p) for p in data.glob("*.parquet")),
        split="train",
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert loaded.num_rows == 4 and loaded[0]["key"] == "k2"


def test_diff_lists_keys_added_and_removed_between_builds(manifest_dir, registry, manifest):
    first = run_build(manifest, timezone.now())
    registry.append(FakeRegistryRow("url", "files.example.com/ok.jpg", "new", "url", 21))
    registry[:] = [r for r in registry if r.kind != "domain"]
    second = run_build(manifest, timezone.now())
    diff = selectors.manifest_build_diff(old_id=first.pk, new_id=second.pk)
    assert diff["added"] == ["k3"] and diff["removed"] == ["k8"]
    assert diff["added_count"] == 1 and diff["removed_count"] == 1


def test_a_failing_shard_marks_the_build_failed(manifest_dir, registry, manifest, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    from training_filter.pipeline import shard

    monkeypatch.setattr(shard, "filter_shard", boom)
    build = build_parquet(manifest, enqueue=False)
    from training_filter.tasks import manifest_build_run

    with pytest.raises(RuntimeError):
        manifest_build_run.apply(args=[build.pk], throw=True)
    build.refresh_from_db()
    assert build.status == "failed"
    assert not services.published_dir(build).exists()


def test_a_domain_ai_txt_removes_only_the_paths_it_disallows(manifest_dir, registry, manifest):
    from provenance.models import Signal

    Signal.objects.create(
        kind="ai_txt", domain="files.example.com", value="User-agent: *\nDisallow: /ok", location="ai.txt"
    )
    build = run_build(manifest, timezone.now())
    kept = pads.dataset(Path(build.output_path) / "data").to_table().column("key").to_pylist()
    assert "k8" not in kept and "k7" in kept
    removal = pq.read_table(Path(build.output_path) / "removals.parquet").to_pylist()
    assert {(r["key"], r["reason"], r["rule"]) for r in removal if r["key"] == "k8"} == {
        ("k8", "signal", "ai_txt")
    }
