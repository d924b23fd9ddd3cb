"""Thin Celery tasks: prepare (plans one lease per shard and one for the finaliser, and sends the shards), filter
each shard, finalise (sent when the last shard is done). Job state lives in ManifestBuild/ManifestShard and the
leases (core/leases.py): a dead worker's shard is restarted by the reaper, and every task is safe to run twice."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from core import leases
from training_filter import services

leases.register_job(
    services.JOB, lambda build_id, error: services.manifest_build_fail(build_id=build_id, error=error)
)


def enqueue_build(build_id: int) -> None:
    manifest_build_run.apply_async(args=(build_id,), queue=settings.MANIFEST_CELERY_QUEUE)


@shared_task(
    name="training_filter.tasks.manifest_build_run", acks_late=True, soft_time_limit=3600, time_limit=3900
)
def manifest_build_run(build_id: int) -> None:
    try:
        services.manifest_build_prepare(build_id=build_id, dispatch=True)
    except Exception as exc:
        services.manifest_build_fail(build_id=build_id, error=f"prepare: {exc!r}")
        raise


@shared_task(
    bind=True,
    name="training_filter.tasks.manifest_shard_filter",
    acks_late=True,
    soft_time_limit=3600,
    time_limit=3900,
)
def manifest_shard_filter(self, build_id: int, index: int) -> str:
    try:
        return services.manifest_shard_run(
            build_id=build_id, index=index, worker=leases.holder_name(self.request.id)
        )
    except leases.LeaseLost:
        return "taken-over"  # presumed dead, it was replaced: the new holder finishes the shard
    except Exception as exc:
        services.manifest_build_fail(build_id=build_id, error=f"shard {index}: {exc!r}")
        raise


@shared_task(
    bind=True,
    name="training_filter.tasks.manifest_build_finalise",
    acks_late=True,
    soft_time_limit=3600,
    time_limit=3900,
)
def manifest_build_finalise(self, build_id: int) -> str:
    try:
        build = services.manifest_build_finalise(
            build_id=build_id, holder=leases.holder_name(self.request.id)
        )
    except services.ShardsNotReady:
        return "waiting"  # a duplicate message: the last shard (or the reaper) sends the finaliser again
    except leases.LeaseLost:
        return "taken-over"
    return build.status


@shared_task(name="training_filter.tasks.manifest_builds_refresh")
def manifest_builds_refresh() -> list[int]:
    return [build.pk for build in services.manifest_builds_refresh()]
