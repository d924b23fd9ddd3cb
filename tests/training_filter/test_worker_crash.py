"""A real Celery worker on Redis is SIGKILLed in the middle of a build, restarted, and finishes it: published once,
no duplicate keys, counts right. Needs Redis on 127.0.0.1:6379 and PostgreSQL (the worker uses the test DB)."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from django.conf import settings
from django.db import connection

from tests.training_filter.conftest import write_manifest
from training_filter import services
from training_filter.models import ManifestBuild, ManifestShard

# CI (make test) exports REDIS_URL and must not skip this test; elsewhere it skips without a Redis
REDIS = (
    os.environ.get("PROVENANT_TEST_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
)
ROWS_TOTAL, SHARDS = 400, 5
ROOT = Path(__file__).resolve().parents[2]


def worker_env(tmp_path: Path, queue: str) -> dict:
    db = connection.settings_dict
    registry = tmp_path / "registry.json"
    registry.write_text(
        json.dumps(
            [
                {"kind": "url", "key": "example.org/w/7.jpg", "reason": "r", "rule": "url", "optout_id": 1},
                {
                    "kind": "domain",
                    "key": "blocked.example.net",
                    "reason": "r",
                    "rule": "domain",
                    "optout_id": 2,
                },
            ]
        )
    )
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": REDIS,
        "CELERY_RESULT_BACKEND": REDIS,
        "PROVENANT_DATA_DIR": str(tmp_path / "data"),
        "PROVENANT_MANIFEST_DIR": str(settings.MANIFEST_DIR),
        "PROVENANT_MANIFEST_QUEUE": queue,
        "PROVENANT_MANIFEST_SHARD_ROWS": str(ROWS_TOTAL // SHARDS),
        "PROVENANT_MANIFEST_SHARD_SLEEP_S": "1.5",
        "PROVENANT_MANIFEST_REGISTRY_SOURCE": "tests.training_filter.file_registry.registry_rows",
        "PROVENANT_TEST_REGISTRY_FILE": str(registry),
        "PYTHONPATH": str(ROOT),
    }


def start_worker(env: dict, queue: str, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "tests.training_filter.celery_app", "worker"]
    command += ["-Q", queue, "-P", "solo", "--without-heartbeat", "--without-mingle", "--without-gossip"]
    command += ["-l", "info", "-n", f"{queue}@%h"]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_sigkilled_worker_restarted_finishes_the_build_once_without_duplicates(manifest_dir, tmp_path):
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS).ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("REDIS_URL"):
            raise
        pytest.skip("no Redis")
    rows = [
        {"key": f"k{i:04d}", "url": f"https://example.org/w/{i}.jpg", "caption": f"w {i}"} for i in range(400)
    ]
    for i in range(0, ROWS_TOTAL, 50):
        rows[i]["url"] = f"https://img.blocked.example.net/{i}.png"
    manifest = write_manifest(tmp_path / "input.parquet", rows, row_group_size=ROWS_TOTAL // SHARDS)
    build = services.manifest_build_create(input_path=str(manifest), enqueue=False)
    queue = f"manifest-test-{uuid.uuid4().hex[:8]}"
    env, log = worker_env(tmp_path, queue), tmp_path / "worker.log"
    worker = start_worker(env, queue, log)
    try:
        from celery import Celery

        Celery(broker=REDIS, backend=REDIS).send_task(
            "training_filter.tasks.manifest_build_run", args=[build.pk], queue=queue
        )
        # kill -9 while a shard is half done: at least one finished, the next one claimed
        wait_for(
            lambda: (
                ManifestShard.objects.filter(build=build, status="done").exists()
                and ManifestShard.objects.filter(build=build, status="running").exists()
            ),
            40,
            "a shard in flight",
        )
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        killed_at = ManifestShard.objects.get(build=build, status="running").index
        assert ManifestBuild.objects.get(pk=build.pk).status == "running"
        assert not services.published_dir(build).exists()
        worker = start_worker(env, queue, log)
        wait_for(
            lambda: ManifestBuild.objects.get(pk=build.pk).status in ("published", "failed"), 45, "publish"
        )
    finally:
        worker.kill()
        worker.wait(timeout=10)
    build.refresh_from_db()
    assert build.status == "published", (build.error, log.read_text()[-3000:])
    assert ManifestShard.objects.get(build=build, index=killed_at).attempts >= 2  # redelivered and redone
    keys = pads.dataset(Path(build.output_path) / "data").to_table().column("key").to_pylist()
    removed = pq.read_table(Path(build.output_path) / "removals.parquet").column("key").to_pylist()
    assert len(keys) == len(set(keys)) and len(removed) == len(set(removed))
    assert sorted(keys + removed) == sorted(r["key"] for r in rows)
    assert build.rows_in == ROWS_TOTAL and build.removed == {"domain": 8, "url": 1}
    assert build.rows_out == ROWS_TOTAL - 9 == len(keys)
    published = [p for p in Path(settings.MANIFEST_DIR).iterdir() if not p.name.startswith(".")]
    assert published == [services.published_dir(build)]
