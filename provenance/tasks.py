"""Thin Celery tasks: start -> chord(one task per shard) -> finish, with an error callback that fails the run.
State lives in IngestRun/IngestShard; every task is safe to run twice (a redelivered shard resumes at its row)."""

from celery import chord, shared_task
from django.conf import settings

from provenance import services

SHARD_TIME_LIMIT = 6 * 3600


def _queue() -> dict:
    return {"queue": settings.PROVENANT_INGEST_QUEUE}


def enqueue_ingest(run_id: int) -> None:
    ingest_run_task.apply_async(args=[run_id], **_queue())


@shared_task(name="provenance.tasks.ingest_run_task", acks_late=True)
def ingest_run_task(run_id: int) -> None:
    if not services.ingest_run_start(run_id=run_id):
        return
    finish = ingest_run_finish_task.si(run_id).set(**_queue())
    shards = services.ingest_open_shards(run_id)
    if not shards:
        finish.apply_async()
        return
    header = [ingest_shard_task.si(run_id, shard_id).set(**_queue()) for shard_id in shards]
    chord(header)(finish.on_error(ingest_run_failed_task.s(run_id).set(**_queue())))


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
        # the task id survives redelivery, so a restarted worker re-claims (and resumes) its own shard
        shard = services.ingest_shard_execute(
            shard_id=shard_id, worker=self.request.id or "eager", read_many=read_many
        )
    return shard.status


@shared_task(name="provenance.tasks.ingest_run_finish_task")
def ingest_run_finish_task(run_id: int) -> str:
    return services.ingest_run_finish(run_id=run_id).status


@shared_task(name="provenance.tasks.ingest_run_failed_task")
def ingest_run_failed_task(failed_task_id: str, run_id: int) -> None:
    services.ingest_run_fail(run_id=run_id, error=f"task {failed_task_id} failed")
