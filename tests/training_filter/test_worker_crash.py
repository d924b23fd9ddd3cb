"""A real worker (the product's Celery app and settings, Redis, prefork) is SIGKILLed in the middle of a manifest
build, or between its last shard and the finaliser; another worker is started and finishes the build within a
bound: published once, byte for byte the fault-free build, no duplicate keys. Needs Redis and PostgreSQL."""

import hashlib
import json
import time
import uuid
from pathlib import Path

import pyarrow.dataset as pads
import pytest
from django.conf import settings

from core.models import Lease
from optout.models import AuditEntry
from tests.celery_workers import (
    kill_worker,
    require_redis_and_postgres,
    send,
    send_from_a_process,
    start_worker,
    wait_for,
    worker_env,
)
from tests.training_filter.conftest import write_manifest
from training_filter import services
from training_filter.models import ManifestBuild, ManifestShard

ROWS_TOTAL, SHARDS = 400, 5
SHARD_SECONDS = 1.5
# the lease dies 10 s after the kill, the reaper runs every 2 s, a worker starts in ~5-15 s under load: the bound
# is the work left plus RECOVERY_S
RECOVERY_S = 40


@pytest.fixture
def crash_setup(manifest_dir, tmp_path, settings):
    require_redis_and_postgres()
    registry = tmp_path / "registry.json"
    rows = [
        {"kind": "url", "key": "example.org/w/7.jpg", "reason": "r", "rule": "url", "optout_id": 1},
        {"kind": "domain", "key": "blocked.example.net", "reason": "r", "rule": "domain", "optout_id": 2},
    ]
    registry.write_text(json.dumps(rows))
    settings.MANIFEST_REGISTRY_SOURCE = "tests.training_filter.file_registry.registry_rows"
    settings.MANIFEST_SHARD_ROWS = ROWS_TOTAL // SHARDS
    import os

    os.environ["PROVENANT_TEST_REGISTRY_FILE"] = str(registry)
    rows = [
        {"key": f"k{i:04d}", "url": f"https://example.org/w/{i}.jpg", "caption": f"w {i}"}
        for i in range(ROWS_TOTAL)
    ]
    for i in range(0, ROWS_TOTAL, 50):
        rows[i]["url"] = f"https://img.blocked.example.net/{i}.png"
    manifest = write_manifest(tmp_path / "input.parquet", rows, row_group_size=ROWS_TOTAL // SHARDS)
    queue = f"manifest-test-{uuid.uuid4().hex[:8]}"
    env = worker_env(
        tmp_path,
        PROVENANT_MANIFEST_DIR=str(settings.MANIFEST_DIR),
        PROVENANT_MANIFEST_QUEUE=queue,
        PROVENANT_MANIFEST_SHARD_ROWS=str(ROWS_TOTAL // SHARDS),
        PROVENANT_MANIFEST_REGISTRY_SOURCE="tests.training_filter.file_registry.registry_rows",
        PROVENANT_TEST_REGISTRY_FILE=str(registry),
        PROVENANT_MANIFEST_SHARD_SLEEP_S=str(SHARD_SECONDS),
    )
    yield manifest, rows, queue, env
    os.environ.pop("PROVENANT_TEST_REGISTRY_FILE", None)


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def fault_free_build(manifest: Path, as_of) -> ManifestBuild:
    """The command line's build of the same input and cut-off, in this process."""
    build = services.manifest_build_create(
        input_path=str(manifest), as_of=as_of, enqueue=False, trigger="cli"
    )
    indexes = services.manifest_build_prepare(build_id=build.pk)
    services.manifest_shards_run_local(build_id=build.pk, indexes=indexes, threads=1)
    return services.manifest_build_finalise(build_id=build.pk)


def crash_and_recover(
    crash_setup, tmp_path, killed_when, what: str, filesystem_broker: bool = False, **env
) -> tuple[ManifestBuild, float, float]:
    manifest, rows, queue, worker_environment = crash_setup
    worker_environment.update(env, TEST_QUEUE=queue)
    if filesystem_broker:  # the embedded default (make demo): it redelivers nothing, the reaper does it all
        worker_environment["CELERY_BROKER_URL"] = "filesystem://"
        worker_environment.pop("CELERY_RESULT_BACKEND")
    build = services.manifest_build_create(input_path=str(manifest), enqueue=False)
    log = tmp_path / "worker.log"
    worker = start_worker(worker_environment, queue, log, "first")
    try:
        if filesystem_broker:
            send_from_a_process(worker_environment, "training_filter.tasks.manifest_build_run", [build.pk])
        else:
            send("training_filter.tasks.manifest_build_run", [build.pk], queue)
        wait_for(killed_when(build), 90, what)
        kill_worker(worker)
        killed = ManifestBuild.objects.get(pk=build.pk)
        assert killed.status in ("running", "finalising") and not services.published_dir(build).exists()
        started = time.monotonic()
        worker = start_worker(worker_environment, queue, log, "second")
        wait_for(
            lambda: ManifestBuild.objects.get(pk=build.pk).status in ("published", "failed"), 120, "publish"
        )
        recovered_in = time.monotonic() - started
    finally:
        kill_worker(worker)
    build.refresh_from_db()
    assert build.status == "published", (build.error, log.read_text()[-4000:])
    done_after_kill = ManifestShard.objects.filter(build=build).count() - killed.shards_done
    return build, recovered_in, done_after_kill


def assert_published_once_and_identical(build: ManifestBuild, rows: list[dict], manifest: Path) -> None:
    keys = pads.dataset(Path(build.output_path) / "data").to_table().column("key").to_pylist()
    assert len(keys) == len(set(keys)) == build.rows_out == ROWS_TOTAL - 9
    assert build.rows_in == ROWS_TOTAL and build.removed == {"domain": 8, "url": 1}
    published = [p for p in Path(settings.MANIFEST_DIR).iterdir() if not p.name.startswith(".")]
    assert published == [services.published_dir(build)]
    assert AuditEntry.objects.filter(event="manifest_published", payload__build=build.pk).count() == 1
    reference = fault_free_build(manifest, build.as_of)
    assert tree_digest(Path(reference.output_path)) == tree_digest(Path(build.output_path))
    assert reference.content_hash == build.content_hash


def shard_in_flight(build):
    """One shard done and another running: the moment to kill the worker."""
    return lambda: (
        ManifestShard.objects.filter(build=build, status="done").exists()
        and ManifestShard.objects.filter(build=build, status="running").exists()
    )


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_build_whose_worker_is_killed_mid_shard_finishes_on_a_new_worker_identical_and_published_once(
    crash_setup, tmp_path
):
    build, recovered_in, shards_left = crash_and_recover(
        crash_setup, tmp_path, shard_in_flight, "a shard in flight"
    )
    # two pool processes: the shards left take ceil(left / 2) x SHARD_SECONDS of work
    assert recovered_in < -(-shards_left // 2) * SHARD_SECONDS + RECOVERY_S
    restarted = Lease.objects.filter(job=services.job_key(build.pk), kind=services.SHARD, attempts__gte=2)
    assert restarted.exists()
    assert not Lease.objects.filter(job=services.job_key(build.pk)).exclude(state="done").exists()
    assert_published_once_and_identical(build, crash_setup[1], crash_setup[0])


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_build_whose_worker_is_killed_while_finalising_is_published_once_by_a_new_worker(
    crash_setup, tmp_path
):
    def finalising(build):
        return lambda: ManifestBuild.objects.get(pk=build.pk).status == "finalising"

    build, recovered_in, _ = crash_and_recover(
        crash_setup, tmp_path, finalising, "the finaliser", PROVENANT_MANIFEST_FINALISE_SLEEP_S="3"
    )
    assert recovered_in < 3 + RECOVERY_S
    finalise = Lease.objects.get(kind=services.FINALISE, unit=str(build.pk))
    assert (finalise.state, finalise.attempts) == ("done", 2)
    assert_published_once_and_identical(build, crash_setup[1], crash_setup[0])


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_on_the_embedded_filesystem_broker_a_killed_workers_build_finishes_on_a_new_worker(
    crash_setup, tmp_path
):
    build, recovered_in, shards_left = crash_and_recover(
        crash_setup, tmp_path, shard_in_flight, "a shard in flight", filesystem_broker=True
    )
    assert recovered_in < -(-shards_left // 2) * SHARD_SECONDS + RECOVERY_S
    assert_published_once_and_identical(build, crash_setup[1], crash_setup[0])
