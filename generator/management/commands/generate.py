"""manage.py generate "prompt" --seed 1 --out x.png [--override-stale --operator USERNAME]"""

import shutil

from django.core.management.base import BaseCommand, CommandError

from core.exceptions import ApplicationError
from core.permissions import is_operator


class Command(BaseCommand):
    help = "Generate an image with the current generator, store it with its attribution, and write a PNG."

    def add_arguments(self, parser):
        parser.add_argument("prompt")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--out", default=None, help="also copy the PNG here")
        parser.add_argument(
            "--override-stale", action="store_true", help="operator override (needs --operator)"
        )
        parser.add_argument("--operator", default=None, help="staff username recorded as the creator")

    def handle(self, *args, **opts):
        from django.contrib.auth import get_user_model

        from generator.services import generated_image_create

        user = None
        if opts["operator"]:
            user = get_user_model().objects.filter(username=opts["operator"]).first()
            if user is None:
                raise CommandError(f"no user {opts['operator']!r}")
        if opts["override_stale"] and (user is None or not is_operator(user)):
            raise CommandError(
                "--override-stale needs --operator naming an operator (the override is recorded)"
            )
        try:
            image = generated_image_create(
                prompt=opts["prompt"], seed=opts["seed"], user=user, override_stale=opts["override_stale"]
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if opts["out"]:
            with image.image.open("rb") as src, open(opts["out"], "wb") as dst:
                shutil.copyfileobj(src, dst)
        for record in image.attributions.all():
            top = ", ".join(f"{k} {v:.1%}" for k, v in record.shares.items())
            self.stdout.write(f"  {record.label:10s} {top}")
        self.stdout.write(
            self.style.SUCCESS(
                f"image {image.pk} ({image.model.version}, seed {image.seed}) in {image.seconds:.2f} s"
                + (f" -> {opts['out']}" if opts["out"] else "")
            )
        )
