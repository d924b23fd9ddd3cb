from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.exceptions import ApplicationError
from provenance import services
from provenance.models import IngestRun
from provenance.tasks import ingest_run_task


class Command(BaseCommand):
    help = (
        "Ingest a folder of images or an img2dataset-style manifest (Parquet, CSV, JSONL) into a collection."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--collection", required=True)
        parser.add_argument(
            "--raster-root",
            default="",
            help="folder of pre-rendered PNGs with the same relative paths as the SVGs (openclipart-png)",
        )
        parser.add_argument("--workers", type=int, default=None, help="decoding processes")
        parser.add_argument(
            "--async", dest="use_celery", action="store_true", help="enqueue as a Celery task"
        )
        parser.add_argument(
            "--show-errors", type=int, default=20, help="how many failures to list at the end"
        )

    def handle(self, *args, **options):
        try:
            run = services.ingest_run_create(
                path=options["path"],
                collection_name=options["collection"],
                raster_root=options["raster_root"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if options["use_celery"]:
            transaction.on_commit(lambda: ingest_run_task.delay(run.id))
            self.stdout.write(f"queued ingest run {run.id}")
            return
        try:
            run = self._run_with_progress(run, options["workers"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self._summary(run, options["show_errors"])

    def _run_with_progress(self, run: IngestRun, workers: int | None) -> IngestRun:
        from tqdm import tqdm

        with tqdm(desc="ingest", unit="img", total=None, dynamic_ncols=True) as bar:

            def progress(current: IngestRun) -> None:
                bar.total = current.total or None
                bar.update(current.processed - bar.n)
                bar.set_postfix(new=current.new, skipped=current.skipped, failed=current.failed)

            return services.ingest_run_execute(run_id=run.id, progress=progress, workers=workers)

    def _summary(self, run: IngestRun, show_errors: int) -> None:
        for error in run.errors[:show_errors]:
            self.stderr.write(f"  failed {error['item']}: {error['reason']}")
        if len(run.errors) > show_errors:
            self.stderr.write(
                f"  ... {len(run.errors) - show_errors} more in the admin (ingest run {run.id})"
            )
        elapsed = (run.finished_at - run.started_at).total_seconds()
        self.stdout.write(
            f"ingest {run.status}: {run.processed} seen, {run.new} new, {run.skipped} skipped, {run.failed} failed "
            f"in {elapsed:.1f} s ({run.images_per_second:.1f} images/s) -> collection {run.collection.name}"
        )
