"""Print (and optionally write) the audit chain's head as an anchor to publish outside the database."""

import os
from pathlib import Path

from django.core.management.base import BaseCommand
from django.utils import timezone

from optout import audit


class Command(BaseCommand):
    help = (
        "Print the audit log's current head (seq and keyed hash). Publish it somewhere the database's "
        "administrators cannot rewrite (a transparency log, a signed e-mail, a public repository); "
        "`verify_audit --anchor` then detects a cut tail or a rewritten log."
    )

    def add_arguments(self, parser):
        parser.add_argument("--write", metavar="PATH", help="also write the anchor to this file")

    def handle(self, *args, **options):
        anchor = audit.current_anchor()
        line = f"{anchor} at={timezone.now().strftime('%Y-%m-%dT%H:%M:%SZ')}"
        if options["write"]:
            path = Path(options["write"])
            part = path.with_name(path.name + ".part")
            part.write_text(line + "\n")
            os.replace(part, path)
        self.stdout.write(line)
