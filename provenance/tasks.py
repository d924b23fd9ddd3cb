"""Thin Celery tasks: start (one lease per shard, each shard sent as a task) -> shards -> finish (sent when the
last shard is done). State lives in IngestRun/IngestShard and the leases (core/leases.py): a dead worker's shard
is restarted by the reaper and resumes at its row; every task is safe to run twice."""

from celery import shared_task
from django.conf import settings

from core import leases
from provenance import services

SHARD_TIME_LIMIT = 6 * 3600

leases.register_job(services.JOB, lambda run_id, error: services.ingest_run_fail(run_id=run_id, error=error))


def enqueue_ingest(run_id: int) -> None:
    ingest_run_task.apply_async(args=(run_id,), queue=settings.PROVENANT_INGEST_QUEUE)


@shared_task(name="provenance.tasks.ingest_run_task", acks_late=True, soft_time_limit=600, time_limit=660)
def ingest_run_task(run_id: int) -> None:
    services.ingest_run_start(run_id=run_id)


@shared_task(
    bind=True,
    name="provenance.tasks.ingest_shard_task",
    acks_late=True,
    soft_time_limit=SHARD_TIME_LIMIT,
    time_limit=SHARD_TIME_LIMIT + 300,
)
def ingest_shard_task(self, run_id: int, shard_id: int) -> str:
    # one process per task: the workers of a Celery pool are the parallelism, so no decoding pool of its own
    with services.reader(1) as read_many:
        shard = services.ingest_shard_execute(
            shard_id=shard_id, worker=leases.holder_name(self.request.id), read_many=read_many
        )
    leases.leases_dispatch(job=services.job_key(run_id))  # the finish, when this was the last shard
    return shard.status


@shared_task(
    bind=True,
    name="provenance.tasks.ingest_run_finish_task",
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
)
def ingest_run_finish_task(self, run_id: int) -> str:
    return services.ingest_run_finish_leased(run_id=run_id, holder=leases.holder_name(self.request.id)).status
