from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Build the offline default model provenant-lite0-minilm: frozen EfficientNet-Lite0 + MiniLM towers from "
        "their PyPI packages, projection heads trained contrastively on the collection's captions (LiT)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--collection", default=None, help="train on this collection only (default: all)")
        parser.add_argument("--epochs", type=int, default=20)
        parser.add_argument("--limit", type=int, default=None, help="use at most this many assets")
        parser.add_argument("--embed-dim", type=int, default=256)
        parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
        parser.add_argument("--workers", type=int, default=2, help="image decoding processes")
        parser.add_argument(
            "--holdout", type=float, default=0.2, help="share of works held out for recall@10"
        )
        parser.add_argument("--no-cache", action="store_true", help="recompute every image feature")
        parser.add_argument(
            "--if-missing", action="store_true", help="do nothing when a built model is already in place"
        )

    def handle(self, *args, **options):
        import torch
        from tqdm import tqdm

        from embeddings.encoders import default_model as dm
        from embeddings.encoders.default_model_build import build

        if options["if_missing"] and self._already_built(dm):
            return
        torch.set_num_threads(getattr(settings, "PROVENANT_TORCH_THREADS", 2))
        cache = (
            None
            if options["no_cache"]
            else settings.DATA_DIR / "cache" / "provenant-lite0-minilm-features.pt"
        )
        try:
            record = build(
                collection=options["collection"],
                limit=options["limit"],
                epochs=options["epochs"],
                embed_dim=options["embed_dim"],
                batch_size=options["batch_size"],
                workers=options["workers"],
                holdout=options["holdout"],
                cache_file=cache,
                progress=lambda **kw: tqdm(dynamic_ncols=True, **kw),
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        for path, reason in record["failed"][:10]:
            self.stderr.write(f"  skipped {path}: {reason}")
        m = record["metrics"]
        self.stdout.write(
            f"built {record['model']} -> {record['folder']} (space {record['space_id']}): text-to-image recall@10 "
            f"on {m['n_held_out']} held-out works {m['recall_at_10_trained']:.3f} trained vs "
            f"{m['recall_at_10_untrained']:.3f} untrained (chance {m['recall_at_10_chance']:.3f}); "
            f"{m['n_train']} trained on, {m['n_failed_decode']} undecodable, {m['epochs']} epochs, "
            f"{m['seconds']:.0f} s"
        )

    def _already_built(self, dm) -> bool:
        folder = dm.model_dir()
        record = dm.read_space_record(folder)
        if record is None or not (folder / record["checkpoint"]).is_file():
            return False
        recall = record.get("metrics", {}).get("recall_at_10_trained")
        self.stdout.write(
            f"{dm.MODEL_NAME} already built in {folder} (space {record['space_id']}, held-out recall@10 {recall}); "
            "run without --if-missing to rebuild"
        )
        return True
