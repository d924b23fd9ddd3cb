"""Thin Celery tasks: they take ids, call a service, and are safe to run twice (a rerun embeds nothing).

Indexing through workers is a chord: one task per batch of works (so several workers share a big collection),
then a task that publishes the indexes, with an error callback that marks the run failed.
"""

from celery import chord, shared_task


def enqueue_index_run(run_id: int, batches: list[list[int]]) -> None:
    finish = index_finish_task.si(run_id)
    if not batches:
        finish.apply_async()
        return
    finish = finish.on_error(index_failed_task.s(run_id))
    chord([index_batch_task.si(run_id, batch) for batch in batches])(finish)


@shared_task(acks_late=True, soft_time_limit=3600, time_limit=3900)
def index_batch_task(run_id: int, asset_ids: list[int]) -> int:
    from embeddings.services import index_batch, index_fail

    try:
        return index_batch(run_id=run_id, asset_ids=asset_ids)
    except Exception as exc:
        index_fail(run_id=run_id, error=f"batch of {len(asset_ids)} works: {exc!r}")
        raise


@shared_task(acks_late=True, soft_time_limit=3600, time_limit=3900)
def index_finish_task(run_id: int) -> str:
    from embeddings.services import index_finish

    return index_finish(run_id=run_id).status


@shared_task
def index_failed_task(failed_task_id: str, run_id: int) -> None:
    from embeddings.services import index_fail

    index_fail(run_id=run_id, error=f"task {failed_task_id} failed")


@shared_task(bind=True, acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def index_collection_task(self, collection_name: str) -> int:
    from embeddings.services import index_collection

    return index_collection(collection_name=collection_name).id


@shared_task(acks_late=True, soft_time_limit=3600, time_limit=3900)
def index_publish_task() -> int:
    from embeddings.services import index_publish

    return index_publish()["ntotal"]
