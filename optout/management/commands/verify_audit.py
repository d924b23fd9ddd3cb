"""Check the keyed audit chain (every row, the head, and any published anchors); exit non-zero on any problem."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from optout import audit


class Command(BaseCommand):
    help = (
        "Verify the keyed, hash-chained audit log: edited, deleted or re-hashed rows, a cut tail, and (with "
        "--anchor / --anchor-file) a mismatch with an anchor published earlier by audit_anchor."
    )

    def add_arguments(self, parser):
        parser.add_argument("--anchor", action="append", default=[], help="'seq=N hash=H' or 'N:H'")
        parser.add_argument("--anchor-file", action="append", default=[], help="a file audit_anchor wrote")

    def handle(self, *args, **options):
        try:
            anchors = [audit.parse_anchor(text) for text in options["anchor"]]
            anchors += [audit.parse_anchor(Path(path).read_text()) for path in options["anchor_file"]]
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        report = audit.verify(anchors=anchors)
        if report.problems:
            for problem in report.problems:
                self.stderr.write(f"  {problem}")
            first, more = report.problems[0], len(report.problems) - 1
            kinds = ", ".join(dict.fromkeys(p.kind for p in report.problems))
            raise CommandError(
                f"audit log broken at row {first.seq} ({first.kind}): {first.detail}"
                + (f" (+{more} more: {kinds})" if more else "")
            )
        checked = f"{len(anchors)} anchor(s) matched" if anchors else "no anchor given"
        self.stdout.write(
            self.style.SUCCESS(f"audit log intact: {report.checked} rows verified, head at row "
                               f"{report.last_seq}; {checked}")
        )  # fmt: skip
