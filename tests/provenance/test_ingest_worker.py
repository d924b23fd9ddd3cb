"""Shards as Celery tasks on real workers: two worker processes on Redis share a webdataset's shards, one task per
shard, and the run ends done with every row once. Needs Redis and PostgreSQL (the workers use the test DB)."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from core.models import Lease
from provenance import services
from provenance.models import Asset, IngestRun
from tests.dataset_tools import drawings, write_webdataset

REDIS = (
    os.environ.get("PROVENANT_TEST_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
)
ROOT = Path(__file__).resolve().parents[2]


def start_worker(env: dict, queue: str, name: str, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "config.celery", "worker", "-Q", queue, "-P", "solo"]
    command += [
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
        "-l",
        "info",
        "-n",
        f"{name}@%h",
    ]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_two_workers_share_the_shards_one_task_each_and_every_row_is_ingested_once(tmp_path, settings):
    redis = pytest.importorskip("redis")
    if connection.vendor != "postgresql":
        pytest.skip("the workers share the test database: PostgreSQL only")
    try:
        redis.Redis.from_url(REDIS).ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("REDIS_URL"):
            raise
        pytest.skip("no Redis")
    write_webdataset(tmp_path / "wds", drawings(8, side=96), per_shard=2)
    queue = f"ingest-test-{uuid.uuid4().hex[:8]}"
    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.dev", "PYTHONPATH": str(ROOT),
           "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "CELERY_BROKER_URL": REDIS, "CELERY_RESULT_BACKEND": REDIS, "PROVENANT_INGEST_QUEUE": queue,
           "PROVENANT_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    settings.PROVENANT_INGEST_QUEUE = queue
    settings.CELERY_TASK_ALWAYS_EAGER = False
    run = services.ingest_run_create(path=str(tmp_path / "wds"), collection_name="workers")
    workers = [start_worker(env, queue, f"w{i}", tmp_path / f"w{i}.log") for i in range(2)]
    try:
        from config.celery import app

        app.conf.broker_url = REDIS
        app.conf.task_always_eager = False
        with app.connection_for_write() as conn:
            app.send_task("provenance.tasks.ingest_run_task", args=[run.id], queue=queue, connection=conn)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and IngestRun.objects.get(id=run.id).status in (
            "pending",
            "running",
        ):
            time.sleep(0.5)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    run.refresh_from_db()
    logs = "".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
    assert (run.status, run.new, run.processed) == ("done", 8, 8), logs[-3000:]
    assert list(run.shards.values_list("status", flat=True)) == ["done"] * 4
    holders = Lease.objects.filter(job=services.job_key(run.id), kind=services.SHARD).values_list(
        "holder", flat=True
    )
    assert len(set(holders)) == 4  # one task per shard
    assert Asset.objects.filter(collection__name="workers").count() == 8
