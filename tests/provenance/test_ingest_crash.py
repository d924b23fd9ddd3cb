"""A real worker (the product's Celery app and settings, Redis, prefork) is SIGKILLed while it ingests a webdataset
shard set; another worker is started and finishes the run within a bound: every work once, the same works as a
fault-free ingest, no duplicate rows. Needs Redis and PostgreSQL (the workers use the test database)."""

import time
import uuid

import pytest

from core.models import Lease
from provenance import services
from provenance.models import Asset, IngestRun, IngestShard
from tests.celery_workers import (
    kill_worker,
    require_redis_and_postgres,
    send,
    start_worker,
    wait_for,
    worker_env,
)
from tests.dataset_tools import drawings, write_webdataset

WORKS, PER_SHARD, BATCH_SECONDS = 12, 3, 2.0
RECOVERY_S = 40  # the lease dies 10 s after the kill, the reaper runs every 2 s, a worker starts in ~5-15 s


def works_of(collection: str) -> list[tuple[str, str, str]]:
    rows = Asset.objects.filter(collection__name=collection).values_list("source", "sha256", "title")
    return sorted(rows)


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_an_ingest_whose_worker_is_killed_mid_shard_finishes_on_a_new_worker_with_every_work_once(tmp_path):
    require_redis_and_postgres()
    write_webdataset(tmp_path / "wds", drawings(WORKS, side=96), per_shard=PER_SHARD)
    queue = f"ingest-crash-{uuid.uuid4().hex[:8]}"
    env = worker_env(
        tmp_path, PROVENANT_INGEST_QUEUE=queue, PROVENANT_INGEST_BATCH_SLEEP_S=str(BATCH_SECONDS)
    )
    run = services.ingest_run_create(path=str(tmp_path / "wds"), collection_name="crashed")
    log = tmp_path / "worker.log"
    worker = start_worker(env, queue, log, "first")
    try:
        send("provenance.tasks.ingest_run_task", [run.id], queue)
        wait_for(
            lambda: (
                IngestShard.objects.filter(run=run, status="done").exists()
                and IngestShard.objects.filter(run=run, status="running").exists()
            ),
            90,
            "a shard in flight",
        )
        kill_worker(worker)
        left = IngestShard.objects.filter(run=run).exclude(status="done").count()
        started = time.monotonic()
        worker = start_worker(env, queue, log, "second")
        wait_for(lambda: IngestRun.objects.get(id=run.id).status in ("done", "failed"), 120, "the run's end")
        recovered_in = time.monotonic() - started
    finally:
        kill_worker(worker)
    run.refresh_from_db()
    assert (run.status, run.new, run.processed, run.failed) == ("done", WORKS, WORKS, 0), log.read_text()[
        -4000:
    ]
    assert recovered_in < -(-left // 2) * BATCH_SECONDS + RECOVERY_S
    restarted = Lease.objects.filter(job=services.job_key(run.id), kind=services.SHARD, attempts__gte=2)
    assert restarted.exists()
    assert not Lease.objects.filter(job=services.job_key(run.id)).exclude(state="done").exists()
    sources = [source for source, _, _ in works_of("crashed")]
    assert len(sources) == len(set(sources)) == WORKS
    # the same works, byte for byte, as an ingest nobody interrupted
    reference = services.ingest_run_create(path=str(tmp_path / "wds"), collection_name="reference")
    assert services.ingest_run_execute(run_id=reference.id, workers=1).status == "done"
    assert works_of("reference") == works_of("crashed")
