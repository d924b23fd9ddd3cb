"""Thin Celery tasks: they take names, call a service, and are safe to run twice (a rerun embeds nothing)."""

from celery import shared_task


@shared_task(bind=True, acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def index_collection_task(self, collection_name: str) -> int:
    from embeddings.services import index_collection

    return index_collection(collection_name=collection_name).id


@shared_task(acks_late=True, soft_time_limit=3600, time_limit=3900)
def index_publish_task() -> int:
    from embeddings.services import index_publish

    return index_publish()["ntotal"]
