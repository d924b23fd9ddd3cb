"""Which embedding size and how many epochs for the default model's heads: held-out text-to-image recall@10.

    DJANGO_SETTINGS_MODULE=config.settings.dev python benchmarks/default_model_sweep.py --collection openclipart

Reuses the image-feature cache that `manage.py build_default_model` leaves in var/cache (run the build first), so
only the captions are re-encoded and each variant trains in seconds. Same split as the build (asset id hash).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collection", default=None)
    parser.add_argument("--dims", default="128,256,512")
    parser.add_argument("--epochs", default="10,20,40")
    args = parser.parse_args()

    import django

    django.setup()
    import torch
    from django.conf import settings

    from embeddings.encoders import default_model as dm
    from embeddings.encoders.default_model_build import image_feature_table, training_items

    torch.set_num_threads(settings.PROVENANT_TORCH_THREADS)
    items = training_items(collection=args.collection, limit=None)
    scratch = Path(tempfile.mkdtemp(prefix="sweep-"))
    model, preprocess, tokenizer = dm.create_base_model(scratch, embed_dim=256)
    cache = settings.DATA_DIR / "cache" / "provenant-lite0-minilm-features.pt"

    class _Quiet:
        def __init__(self, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            pass

    features, _ = image_feature_table(
        model,
        preprocess,
        [it.path for it in items],
        cache_file=cache,
        batch_size=64,
        workers=2,
        progress=_Quiet,
    )
    kept = [i for i in range(len(items)) if i in features]
    img = torch.stack([features[i] for i in kept])
    txt = dm.encode_caption_features(model, tokenizer, [items[i].caption for i in kept])
    held = torch.tensor([dm.is_held_out(items[i].asset_id) for i in kept])
    print(f"\n{len(kept)} works, {int(held.sum())} held out; text-to-image recall@10 on the held-out works")
    print(f"{'dim':>5} {'epochs':>7} {'untrained':>10} {'trained':>8} {'train s':>8}")
    for dim in [int(d) for d in args.dims.split(",")]:
        for epochs in [int(e) for e in args.epochs.split(",")]:
            model, _, _ = dm.create_base_model(scratch, embed_dim=dim)
            with torch.inference_mode():
                ti, tt = dm.project(model, img[held], txt[held])
                untrained = dm.recall_at_k(tt, ti)
            started = time.perf_counter()
            dm.train_heads(model, img[~held], txt[~held], epochs=epochs)
            seconds = time.perf_counter() - started
            with torch.inference_mode():
                ti, tt = dm.project(model, img[held], txt[held])
                trained = dm.recall_at_k(tt, ti)
            print(f"{dim:>5} {epochs:>7} {untrained:>10.3f} {trained:>8.3f} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
