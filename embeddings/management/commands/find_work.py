import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Find where a picture (or its copies: resized, cropped, mirrored, overlaid) sits in the collections."
    )

    def add_arguments(self, parser):
        parser.add_argument("image", help="path of the picture")
        parser.add_argument("--top", type=int, default=10)
        parser.add_argument("--json", action="store_true", help="print a JSON list")

    def handle(self, *args, image, top, **options):
        from embeddings.encoders.factory import get_encoder
        from embeddings.search import index
        from embeddings.search.cascade import search_image_bytes
        from embeddings.selectors import hit_rows

        path = Path(image)
        if not path.is_file():
            raise CommandError(f"no such file: {image}")
        space = get_encoder().space
        if index.load_index(space) is None:
            self.stderr.write(
                f"warning: no index in embedding space {space.id}; only exact and perceptual-hash matches are "
                "searched. Run `python manage.py index --collection NAME` first."
            )
        try:
            rows = hit_rows(search_image_bytes(path.read_bytes(), top_k=top))
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False))
            return
        for rank, row in enumerate(rows, 1):
            self.stdout.write(
                f"{rank:>3}. [{row['match']:<9}] {row['score']:.3f}  #{row['asset_id']} {row['title'] or '-'} "
                f"by {row['contributor'] or 'unknown'}  ({row['source']})\n      {row['why']}; cluster "
                f"{row['cluster']}" + ("; opted out" if row["opted_out"] else "")
            )
        self.stdout.write(f"{len(rows)} hits")
