"""Recompute the audit chain; exit non-zero at the first edited or missing row."""

from django.core.management.base import BaseCommand, CommandError

from optout import audit


class Command(BaseCommand):
    help = "Verify the hash-chained audit log and report the first edited or missing row."

    def handle(self, *args, **options):
        checked, problem = audit.verify()
        if problem is not None:
            raise CommandError(f"audit log broken at row {problem.seq} ({problem.kind}): {problem.detail}")
        self.stdout.write(self.style.SUCCESS(f"audit log intact: {checked} rows verified"))
