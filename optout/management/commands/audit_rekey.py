"""Upgrade step: re-hash an audit log written before it was keyed (plain SHA-256 rows) under the audit key."""

from django.core.management.base import BaseCommand, CommandError

from optout import audit


class Command(BaseCommand):
    help = (
        "Re-hash the audit log under PROVENANT_AUDIT_KEY after checking every row as it was written; run once "
        "after upgrading from an unkeyed log, then publish a fresh anchor (audit_anchor)."
    )

    def handle(self, *args, **options):
        try:
            count, old_head = audit.rekey_legacy_rows()
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"re-keyed {count} rows (the unkeyed head was {old_head}); publish a new anchor"
            )
        )
