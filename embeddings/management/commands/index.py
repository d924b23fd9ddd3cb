from django.core.management.base import BaseCommand, CommandError

from core.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Hash, embed and index a collection's works (resumable; a second run adds nothing)."

    def add_arguments(self, parser):
        parser.add_argument("--collection", required=True)
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--workers", type=int, default=None, help="decoding threads")
        parser.add_argument(
            "--parts",
            choices=["inline", "background", "off"],
            default="inline",
            help="each work's six part embeddings: here (default), by the Celery worker once the whole-work "
            "index is published (the site serves searches meanwhile), or not at all",
        )
        parser.add_argument(
            "--queue",
            action="store_true",
            help="do everything through Celery, one task per batch of works, so several workers share the "
            "collection; returns at once (progress on the operator dashboard)",
        )

    def handle(self, *args, collection, batch_size, workers, parts, queue, **options):
        from embeddings.services import index_collection, index_start

        try:
            if queue:
                run = index_start(collection_name=collection, batch_size=batch_size)
                self.stdout.write(
                    f"queued index run {run.pk} of {collection}: {run.total} works in {run.batches_total} "
                    "batches for the Celery workers"
                )
                return
            run = index_collection(
                collection_name=collection,
                batch_size=batch_size,
                workers=workers,
                progress=options["verbosity"] > 0,
                parts=parts,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"indexed {collection}: {run.embedded} embedded, {run.hashed} hashed, {run.skipped} already in "
            f"space {run.space_id}, {run.failed} failed, {run.parts_embedded} works' parts embedded; "
            f"index {run.index_kind} with {run.index_total} vectors"
            + (f" ({run.images_per_second} img/s)" if run.images_per_second else "")
            + ("; the parts follow in the background (Celery worker)" if parts == "background" else "")
        )
