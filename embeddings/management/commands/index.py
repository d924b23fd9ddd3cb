from django.core.management.base import BaseCommand, CommandError

from core.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Hash, embed and index a collection's works (resumable; a second run adds nothing)."

    def add_arguments(self, parser):
        parser.add_argument("--collection", required=True)
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--workers", type=int, default=None, help="decoding threads")

    def handle(self, *args, collection, batch_size, workers, **options):
        from embeddings.services import index_collection

        try:
            run = index_collection(
                collection_name=collection,
                batch_size=batch_size,
                workers=workers,
                progress=options["verbosity"] > 0,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"indexed {collection}: {run.embedded} embedded, {run.hashed} hashed, {run.skipped} already in "
            f"space {run.space_id}, {run.failed} failed, {run.parts_embedded} works' parts embedded; "
            f"index {run.index_kind} with {run.index_total} vectors"
            + (f" ({run.images_per_second} img/s)" if run.images_per_second else "")
        )
