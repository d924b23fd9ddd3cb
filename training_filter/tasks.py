"""Thin Celery tasks: prepare -> chord(filter each shard) -> finalise, with an error callback that fails the build.
Job state lives in ManifestBuild/ManifestShard; every task is safe to run twice (acks_late redelivers a task
whose worker was killed)."""

from __future__ import annotations

from celery import chord, shared_task
from django.conf import settings

from training_filter import services


def _queue() -> dict:
    return {"queue": settings.MANIFEST_CELERY_QUEUE}


def enqueue_build(build_id: int) -> None:
    manifest_build_run.apply_async(args=[build_id], **_queue())


@shared_task(name="training_filter.tasks.manifest_build_run", acks_late=True)
def manifest_build_run(build_id: int) -> None:
    try:
        indexes = services.manifest_build_prepare(build_id=build_id)
    except Exception as exc:
        services.manifest_build_fail(build_id=build_id, error=f"prepare: {exc!r}")
        raise
    if indexes is None:
        return
    finalise = manifest_build_finalise.si(build_id).set(**_queue())
    if not indexes:
        finalise.apply_async()
        return
    finalise = finalise.on_error(manifest_build_failed.s(build_id).set(**_queue()))
    header = [manifest_shard_filter.si(build_id, index).set(**_queue()) for index in indexes]
    chord(header)(finalise)


@shared_task(bind=True, name="training_filter.tasks.manifest_shard_filter", acks_late=True)
def manifest_shard_filter(self, build_id: int, index: int) -> str:
    # the task id survives redelivery, so a restarted worker re-claims its own shard
    try:
        return services.manifest_shard_run(build_id=build_id, index=index, worker=self.request.id or "eager")
    except Exception as exc:
        services.manifest_build_fail(build_id=build_id, error=f"shard {index}: {exc!r}")
        raise


@shared_task(
    bind=True,
    name="training_filter.tasks.manifest_build_finalise",
    acks_late=True,
    max_retries=None,
    default_retry_delay=2,
)
def manifest_build_finalise(self, build_id: int) -> str:
    try:
        build = services.manifest_build_finalise(build_id=build_id)
    except services.ShardsNotReady as exc:
        if self.request.called_directly or self.request.is_eager:
            raise
        raise self.retry(exc=exc, countdown=2, max_retries=1800) from exc
    return build.status


@shared_task(name="training_filter.tasks.manifest_build_failed")
def manifest_build_failed(failed_task_id: str, build_id: int) -> None:
    services.manifest_build_fail(build_id=build_id, error=f"task {failed_task_id} failed")


@shared_task(name="training_filter.tasks.manifest_builds_refresh")
def manifest_builds_refresh() -> list[int]:
    return [build.pk for build in services.manifest_builds_refresh()]
