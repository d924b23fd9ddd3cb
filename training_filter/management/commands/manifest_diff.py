"""python manage.py manifest_diff OLD_ID NEW_ID [--limit N]"""

from django.core.management.base import BaseCommand, CommandError

from core.exceptions import ApplicationError
from training_filter import selectors


class Command(BaseCommand):
    help = "Keys added and removed between two published manifest builds."

    def add_arguments(self, parser):
        parser.add_argument("old", type=int)
        parser.add_argument("new", type=int)
        parser.add_argument("--limit", type=int, default=0, help="print at most N keys of each (0: all)")

    def handle(self, *args, old: int, new: int, limit: int, **options):
        try:
            diff = selectors.manifest_build_diff(old_id=old, new_id=new, limit=limit or None)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        for key in diff["added"]:
            self.stdout.write(f"+ {key}")
        for key in diff["removed"]:
            self.stdout.write(f"- {key}")
        self.stdout.write(f"{diff['added_count']} added, {diff['removed_count']} removed ({old} -> {new})")
