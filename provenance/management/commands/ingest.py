from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.exceptions import ApplicationError
from provenance import services
from provenance.datasets.layouts import LAYOUTS
from provenance.manifests import IMG2DATASET_DIRECTIVES
from provenance.models import IngestRun
from provenance.tasks import enqueue_ingest


class Command(BaseCommand):
    help = "Ingest a training set into a collection. Layouts, recognised by what is found: " + "; ".join(
        LAYOUTS.values()
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "paths", nargs="*", help="a folder, a file, or a list/glob of shards of one layout"
        )
        parser.add_argument("--collection", default="")
        parser.add_argument(
            "--resume",
            type=int,
            default=None,
            help="continue a failed or interrupted run at the rows it reached",
        )
        parser.add_argument(
            "--raster-root",
            default="",
            help="folder of pre-rendered PNGs with the same relative paths as the SVGs (openclipart-png)",
        )
        parser.add_argument(
            "--allow-root",
            action="append",
            default=[],
            help="a folder absolute local paths of a manifest may point into (repeatable); default: the "
            "manifest's own folder",
        )
        parser.add_argument(
            "--refused-directives",
            default=IMG2DATASET_DIRECTIVES,
            help="the X-Robots-Tag directives img2dataset was told to refuse (its --disallowed_header_directives)",
        )
        parser.add_argument("--workers", type=int, default=None, help="decoding processes")
        parser.add_argument(
            "--async", dest="use_celery", action="store_true", help="enqueue as Celery tasks, one per shard"
        )
        parser.add_argument(
            "--show-errors", type=int, default=20, help="how many failures to list at the end"
        )

    def handle(self, *args, **options):
        if options["resume"] is not None:
            run = IngestRun.objects.filter(id=options["resume"]).first()
            if run is None:
                raise CommandError(f"no ingest run {options['resume']}")
        elif not options["paths"] or not options["collection"]:
            raise CommandError("give a PATH and --collection, or --resume RUN_ID")
        else:
            run = self._create(options)
        self.stdout.write(f"layout: {run.layout}, {run.shards.count()} shard(s)")
        if options["use_celery"]:
            run_id = run.id
            transaction.on_commit(lambda: enqueue_ingest(run_id))
            self.stdout.write(f"queued ingest run {run_id}")
            return
        run = self._run_with_progress(run, options["workers"])
        self._summary(run, options["show_errors"])
        if run.status != IngestRun.Status.DONE:
            raise CommandError(
                f"ingest run {run.id} {run.status}: resume it with `manage.py ingest --resume {run.id}`"
            )

    def _create(self, options) -> IngestRun:
        try:
            return services.ingest_run_create(
                paths=options["paths"],
                collection_name=options["collection"],
                raster_root=options["raster_root"],
                allow_roots=options["allow_root"],
                refused_directives=options["refused_directives"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _run_with_progress(self, run: IngestRun, workers: int | None) -> IngestRun:
        from tqdm import tqdm

        with tqdm(desc="ingest", unit="row", total=run.total or None, dynamic_ncols=True) as bar:

            def progress(current: IngestRun) -> None:
                bar.update(current.processed - bar.n)
                bar.set_postfix(new=current.new, skipped=current.skipped, failed=current.failed)

            return services.ingest_run_execute(run_id=run.id, progress=progress, workers=workers)

    def _summary(self, run: IngestRun, show_errors: int) -> None:
        for error in run.errors[:show_errors]:
            self.stderr.write(f"  {error['item']}: {error['reason']}")
        if len(run.errors) > show_errors:
            self.stderr.write(
                f"  ... {len(run.errors) - show_errors} more in the admin (ingest run {run.id})"
            )
        not_downloaded = ", ".join(f"{n} {status}" for status, n in sorted(run.not_downloaded.items()))
        extra = f"; not downloaded (not works): {not_downloaded}" if not_downloaded else ""
        if run.sha256_mismatches:
            extra += f"; {run.sha256_mismatches} sha256 mismatches"
        ended, began = run.finished_at, run.started_at
        elapsed = (ended - began).total_seconds() if ended and began else 0.0
        self.stdout.write(
            f"ingest {run.status} ({run.layout}): {run.processed} seen, {run.new} new, {run.skipped} skipped, "
            f"{run.failed} failed{extra} in {elapsed:.1f} s ({run.images_per_second:.1f} rows/s) "
            f"-> collection {run.collection.name}"
        )
