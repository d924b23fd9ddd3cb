from celery import shared_task

from provenance import services


@shared_task(bind=True, acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 300)
def ingest_run_task(self, run_id: int) -> int:
    """Thin wrapper: state lives in IngestRun; running it twice skips what is already ingested."""
    return services.ingest_run_execute(run_id=run_id).id
