"""manage.py train_generator --manifest BUILD|latest|FOLDER [--steps N] [--resolution 32] [--conditioning auto]

Resumable: rerunning the same command continues the unfinished run from its latest checkpoint."""

import time

from django.core.management.base import BaseCommand, CommandError

from core.exceptions import ApplicationError
from generator.conditioning import KINDS


class Command(BaseCommand):
    help = "Train the bundled generator on a published clean manifest, then precompute its attribution."

    def add_arguments(self, parser):
        parser.add_argument(
            "--manifest", required=True, help="ManifestBuild id, 'latest', or a manifest folder"
        )
        parser.add_argument("--steps", type=int, default=None)
        parser.add_argument("--resolution", type=int, default=None, choices=[16, 32, 64])
        parser.add_argument("--conditioning", default=None, choices=list(KINDS))
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **opts):
        from generator.services import generator_model_start, generator_model_train

        t0 = time.perf_counter()
        try:
            model = generator_model_start(
                manifest_ref=opts["manifest"],
                steps=opts["steps"],
                resolution=opts["resolution"],
                conditioning=opts["conditioning"],
                seed=opts["seed"],
            )
            self.stdout.write(f"training {model.version} in {model.run_dir}")
            model = generator_model_train(model=model, progress=True)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        figures = model.config.get("figures", {})
        self.stdout.write(
            self.style.SUCCESS(
                f"{model.version}: {model.status}, {model.steps_done} steps, {len(model.training_asset_ids)} works "
                f"by {len(model.training_contributors)} contributors; training {figures.get('train_seconds', 0):.0f} s, "
                f"attribution features {figures.get('feature_seconds', 0):.0f} s, total {time.perf_counter() - t0:.0f} s"
            )
        )
