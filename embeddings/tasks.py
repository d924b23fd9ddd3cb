"""Thin Celery tasks: they take ids, call a service, and are safe to run twice (a rerun embeds nothing).

Indexing through workers is one lease per batch of works (so several workers share a big collection, and a dead
worker's batch is restarted by the reaper), then a finish that publishes the indexes once every batch is done.
"""

from celery import shared_task

from core import leases


def _index_failed(run_id: int, error: str) -> None:
    from embeddings.services import index_fail

    index_fail(run_id=run_id, error=error)


leases.register_job("index_run", _index_failed)


@shared_task(bind=True, acks_late=True, soft_time_limit=3600, time_limit=3900)
def index_batch_task(self, run_id: int, number: int, asset_ids: list[int]) -> int:
    from embeddings.services import index_batch_leased, index_fail

    try:
        return index_batch_leased(
            run_id=run_id, number=number, asset_ids=asset_ids, holder=leases.holder_name(self.request.id)
        )
    except leases.LeaseLost:
        return 0  # presumed dead, it was replaced: the new holder's counts stand
    except Exception as exc:
        index_fail(run_id=run_id, error=f"batch of {len(asset_ids)} works: {exc!r}")
        raise


@shared_task(bind=True, acks_late=True, soft_time_limit=3600, time_limit=3900)
def index_finish_task(self, run_id: int) -> str:
    from embeddings.services import index_finish_leased

    return index_finish_leased(run_id=run_id, holder=leases.holder_name(self.request.id)).status


@shared_task(bind=True, acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def index_collection_task(self, collection_name: str) -> int:
    from embeddings.services import index_collection

    return index_collection(collection_name=collection_name).id


@shared_task(acks_late=True, soft_time_limit=3600, time_limit=3900)
def index_publish_task() -> int:
    from embeddings.services import index_publish

    return index_publish()["ntotal"]
