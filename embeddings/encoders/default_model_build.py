"""Build the offline default model from a collection's assets: frozen features once, heads trained on them.

Called by `manage.py build_default_model`; kept out of the command so tests can drive it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.exceptions import ApplicationError
from embeddings.encoders import default_model as dm

Progress = Callable[
    ..., Any
]  # a tqdm-like factory: progress(total=..., desc=...) -> context manager with update()


@dataclass(frozen=True)
class TrainItem:
    asset_id: int
    path: str
    caption: str


def training_items(*, collection: str | None, limit: int | None) -> list[TrainItem]:
    from provenance.models import Asset

    assets = Asset.objects.exclude(local_path="").order_by("id")
    if collection:
        assets = assets.filter(collection__name=collection)
    items = []
    for asset in assets.only("id", "local_path", "title", "caption", "keywords").iterator(chunk_size=2000):
        caption = asset.caption_text.strip()
        if caption:
            items.append(TrainItem(asset.id, asset.local_path, caption))
        if limit and len(items) >= limit:
            break
    return items


def _cache_key(path: str, max_side: int) -> str:
    stat = Path(path).stat()
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{max_side}"


def image_feature_table(
    model,
    preprocess,
    paths: list[str],
    *,
    cache_file: Path | None,
    batch_size: int,
    workers: int,
    progress: Progress,
) -> tuple[dict[int, Any], list[tuple[int, str]]]:
    """Frozen trunk features by input position, reusing a cache keyed by path, size and mtime."""
    import torch

    from embeddings.encoders.batch_decode import DECODE_MAX_SIDE, iter_pixel_batches

    cache: dict[str, Any] = {}
    if cache_file and cache_file.exists():
        cache = torch.load(cache_file, weights_only=True)
    keys: dict[int, str | None] = {}
    for i, path in enumerate(paths):
        try:
            keys[i] = _cache_key(path, DECODE_MAX_SIDE)
        except OSError:
            keys[i] = None
    features = {i: cache[k] for i, k in keys.items() if k in cache}
    todo = [i for i in range(len(paths)) if i not in features]
    failed: list[tuple[int, str]] = []
    saved = len(features)
    with progress(total=len(todo), desc="image features", unit="img") as bar, torch.inference_mode():
        for batch in iter_pixel_batches(
            [paths[i] for i in todo], preprocess, batch_size=batch_size, workers=workers
        ):
            failed += [(todo[j], reason) for j, reason in batch.failed]
            if batch.pixels is not None:
                for j, row in zip(batch.indices, dm.image_features(model, batch.pixels), strict=True):
                    features[todo[j]] = row.clone()
            bar.update(len(batch.indices) + len(batch.failed))
            if cache_file and len(features) - saved >= 1024:  # an interrupted build keeps most of its work
                saved = _save_cache(cache, cache_file, keys, features)
    if cache_file and todo:
        _save_cache(cache, cache_file, keys, features)
    return features, failed


def _save_cache(cache: dict, cache_file: Path, keys: dict, features: dict) -> int:
    import torch

    cache.update({keys[i]: row for i, row in features.items() if keys[i]})
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    part = cache_file.with_name(cache_file.name + ".part")
    torch.save(cache, part)
    part.replace(cache_file)
    return len(features)


def build(
    *,
    collection: str | None = None,
    limit: int | None = None,
    epochs: int = 20,
    embed_dim: int = dm.DEFAULT_EMBED_DIM,
    batch_size: int = 64,
    workers: int = 2,
    holdout: float = 0.2,
    models_dir: str | Path | None = None,
    cache_file: Path | None = None,
    progress: Progress,
) -> dict[str, Any]:
    """Extract features, train the heads, evaluate against untrained heads, save. Returns the space record."""
    import torch

    started = time.monotonic()
    items = training_items(collection=collection, limit=limit)
    if len(items) < 20:
        raise ApplicationError(
            f"only {len(items)} assets with a local file and a caption"
            + (f" in collection {collection!r}" if collection else "")
            + ": ingest a collection first (`python manage.py ingest PATH --collection NAME`)"
        )
    folder = dm.model_dir(models_dir)
    model, preprocess, tokenizer = dm.create_base_model(folder, embed_dim=embed_dim)
    features, failed = image_feature_table(
        model, preprocess, [it.path for it in items], cache_file=cache_file, batch_size=batch_size,
        workers=workers, progress=progress,
    )  # fmt: skip
    kept = [i for i in range(len(items)) if i in features]
    img = torch.stack([features[i] for i in kept])
    with progress(total=1, desc="text features", unit="set") as bar:
        txt = dm.encode_caption_features(model, tokenizer, [items[i].caption for i in kept])
        bar.update(1)
    extracted = time.monotonic()

    held = torch.tensor([dm.is_held_out(items[i].asset_id, holdout) for i in kept])
    train_img, train_txt, test_img, test_txt = img[~held], txt[~held], img[held], txt[held]
    with torch.inference_mode():
        test_i, test_t = dm.project(model, test_img, test_txt)
        untrained = dm.recall_at_k(test_t, test_i, k=10)
    with progress(total=epochs, desc="train heads", unit="epoch") as bar:

        def on_epoch(epoch: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")

        history = dm.train_heads(model, train_img, train_txt, epochs=epochs, on_epoch=on_epoch)
    with torch.inference_mode():
        test_i, test_t = dm.project(model, test_img, test_txt)
        trained = dm.recall_at_k(test_t, test_i, k=10)
        train_i, train_t = dm.project(model, train_img[:2000], train_txt[:2000])
        train_recall = dm.recall_at_k(train_t, train_i, k=10)
    metrics = {
        "recall_at_10_trained": round(trained, 4),
        "recall_at_10_untrained": round(untrained, 4),
        "recall_at_10_chance": round(min(1.0, 10 / max(len(test_img), 1)), 4),
        "recall_at_10_train_first_2000": round(train_recall, 4),
        "n_train": int(len(train_img)),
        "n_held_out": int(len(test_img)),
        "n_failed_decode": len(failed),
        "epochs": epochs,
        "final_train_loss": round(history[-1], 4) if history else None,
        "collection": collection or "(all)",
        "feature_seconds": round(extracted - started, 1),
        "seconds": round(time.monotonic() - started, 1),
    }
    record = dm.save_model(model, cfg=dm.register_model_config(folder), folder=folder, metrics=metrics)
    record["failed"] = [(items[i].path, reason) for i, reason in failed]
    record["folder"] = str(folder)
    return record
