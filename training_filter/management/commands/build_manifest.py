"""python manage.py build_manifest --collection NAME | --input PATH [--as-of ISO] [--threads N] [--async]"""

from __future__ import annotations

import os
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from core.exceptions import ApplicationError
from training_filter import services
from training_filter.models import ManifestBuild


class Command(BaseCommand):
    help = "Build a filtered training manifest from a collection or an img2dataset-style Parquet manifest."

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--collection", default="")
        source.add_argument("--input", default="", help="Parquet file, folder of .parquet files, or URI")
        parser.add_argument("--as-of", default="", help="opt-out cut-off (ISO 8601); default: now")
        parser.add_argument(
            "--async", dest="run_async", action="store_true", help="enqueue on Celery and exit"
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=settings.MANIFEST_CLI_THREADS,
            help="shards filtered at once on this machine (default MANIFEST_CLI_THREADS; 0: one per CPU)",
        )

    def handle(
        self, *args, collection: str, input: str, as_of: str, run_async: bool, threads: int, **options
    ):
        cutoff = parse_datetime(as_of) if as_of else None
        if as_of and cutoff is None:
            raise CommandError(f"--as-of {as_of!r} is not an ISO 8601 date-time")
        try:
            build = services.manifest_build_create(
                collection=collection, input_path=input, as_of=cutoff, trigger="cli", enqueue=run_async
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if run_async:
            self.stdout.write(f"build {build.pk} queued")
            return
        try:
            self._run_here(build, threads or os.cpu_count() or 1)
        except Exception as exc:
            # never leave a build pending or running behind a failed command: no worker will pick it up
            message = exc.message if isinstance(exc, ApplicationError) else str(exc)
            services.manifest_build_fail(build_id=build.pk, error=message or repr(exc))
            raise CommandError(f"build {build.pk} failed: {message}") from exc

    def _run_here(self, build: ManifestBuild, threads: int) -> None:
        from tqdm import tqdm

        start = time.perf_counter()
        indexes = services.manifest_build_prepare(build_id=build.pk) or []
        with tqdm(total=len(indexes), desc=f"build {build.pk}", unit="shard", disable=not indexes) as bar:
            services.manifest_shards_run_local(
                build_id=build.pk, indexes=indexes, threads=threads, on_done=bar.update
            )
        build = services.manifest_build_finalise(build_id=build.pk)
        elapsed = time.perf_counter() - start
        self.stdout.write(
            f"build {build.pk} {build.status}: {build.rows_in} rows in, {build.rows_out} out, "
            f"removed {build.removed} in {elapsed:.1f}s -> {build.output_path}"
        )
