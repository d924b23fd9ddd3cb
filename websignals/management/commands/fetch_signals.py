"""python manage.py fetch_signals --collection NAME | --input MANIFEST | --resume ID [--max-age 7d] [--headers]
[--async]"""

from __future__ import annotations

import re
import time

from django.core.management.base import BaseCommand, CommandError

from core import leases
from core.exceptions import ApplicationError
from websignals import services
from websignals.models import SignalCrawl, SignalCrawlBatch

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", text)
    if not match:
        raise CommandError(f"--max-age {text!r}: give a number with s, m, h, d or w (e.g. 7d)")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


class Command(BaseCommand):
    help = (
        "Fetch robots.txt, ai.txt and tdmrep.json (and, with --headers, each work's headers) of every site."
    )

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--collection", default="")
        source.add_argument("--input", default="", help="Parquet file or folder with a `url` column")
        source.add_argument("--resume", type=int, default=0, help="finish an interrupted crawl")
        parser.add_argument("--max-age", default="", help="refetch documents older than this (default 7d)")
        parser.add_argument("--headers", action="store_true", help="HEAD every work URL too")
        parser.add_argument("--async", dest="run_async", action="store_true", help="enqueue on Celery")

    def handle(self, *args, collection, input, resume, max_age, headers, run_async, **options):
        try:
            crawl = SignalCrawl.objects.get(pk=resume) if resume else None
        except SignalCrawl.DoesNotExist:
            raise CommandError(f"No signal crawl {resume}.") from None
        if crawl is None:
            try:
                crawl = services.signal_crawl_create(
                    collection=collection, input_path=input, headers=headers, enqueue=run_async,
                    max_age_s=parse_age(max_age) if max_age else None,
                )  # fmt: skip
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
        else:
            services.signal_crawl_resume(crawl_id=crawl.pk, enqueue=run_async)
        if run_async:
            self.stdout.write(f"signal crawl {crawl.pk} queued: {crawl.hosts_total} hosts")
            return
        self._run_here(crawl)

    def _run_here(self, crawl: SignalCrawl) -> None:
        from tqdm import tqdm

        start = time.perf_counter()
        pending = SignalCrawlBatch.objects.filter(crawl=crawl).exclude(status=SignalCrawlBatch.Status.DONE)
        worker = leases.holder_name(None)
        with tqdm(
            total=crawl.hosts_total, initial=crawl.hosts_done, desc=f"crawl {crawl.pk}", unit="host"
        ) as bar:
            for index in pending.order_by("index").values_list("index", flat=True):
                services.signal_crawl_batch_run(
                    crawl_id=crawl.pk, index=index, worker=worker, on_host=lambda _: bar.update(1)
                )
        crawl.refresh_from_db()
        self.stdout.write(
            f"signal crawl {crawl.pk} {crawl.status}: {crawl.hosts_done} hosts ({crawl.hosts_fresh} fresh, "
            f"{crawl.hosts_unreachable} unreachable), {crawl.fetches} fetches in {time.perf_counter() - start:.1f}s"
        )
