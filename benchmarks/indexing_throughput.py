"""Indexing throughput: the batched, parallel-decoding encoder path against a naive single-process open_clip loop.

    DJANGO_SETTINGS_MODULE=config.settings.dev python benchmarks/indexing_throughput.py --n 400

Both run the default model (`provenant-lite0-minilm`, the checkpoint built by `manage.py build_default_model`)
over the same N openclipart PNGs (every k-th file of /usr/share/openclipart/png, sorted), and both decode through
provenance.imaging (bomb guard included).

- naive: for each file, decode it, preprocess it, `model.encode_image` on a batch of one, in this process;
- batched: `OpenClipEncoder.encode_paths`: decoding and preprocessing in DataLoader worker processes (files
  decoded at most 512 px, the tower sees 224), batches of 64, channels-last trunk, `torch.inference_mode`.

It prints images/s for each, the speed-up, the mean cosine between the two paths' vectors of the same image (they
differ only by the decode size), and the load average, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

PNG_ROOT = Path("/usr/share/openclipart/png")


def pick_files(root: Path, n: int) -> list[str]:
    files = sorted(str(p) for p in root.rglob("*.png") if p.is_file() and not p.is_symlink())
    step = max(1, len(files) // n)
    return files[::step][:n]


def naive_loop(paths: list[str], weights: Path, threads: int):
    """What a first script does: open_clip model, then decode one, encode one."""
    import numpy as np
    import open_clip
    import torch

    from embeddings.encoders import default_model as dm
    from provenance.imaging import ImageRejected, load_rgb_path

    torch.set_num_threads(threads)
    dm.register_model_config(weights.parent)
    model, _, preprocess = open_clip.create_model_and_transforms(
        dm.MODEL_NAME, pretrained=str(weights), **dm.preprocess_kwargs()
    )
    model.eval()
    vectors, done = [], []
    started = time.perf_counter()
    for i, path in enumerate(paths):
        try:
            image = load_rgb_path(path).image
        except ImageRejected:
            continue
        with torch.no_grad():
            vectors.append(model.encode_image(preprocess(image)[None], normalize=True)[0].numpy())
        done.append(i)
    return time.perf_counter() - started, done, np.stack(vectors)


def batched_path(paths: list[str], weights: Path, threads: int, workers: int, batch_size: int):
    from embeddings.encoders import default_model as dm
    from embeddings.encoders.openclip import OpenClipEncoder

    encoder = OpenClipEncoder(dm.MODEL_NAME, str(weights), threads=threads, batch_size=batch_size)
    encoder.encode_texts(["warm up"])  # load the model outside the timed part, as the naive loop does
    started = time.perf_counter()
    done, vectors, _ = encoder.encode_paths(paths, workers=workers, batch_size=batch_size)
    return time.perf_counter() - started, done, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads, both paths")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes of the batched path")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--weights", default="", help="checkpoint (default: the built default model)")
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np

    from embeddings.encoders import default_model as dm
    from embeddings.encoders.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    weights = Path(args.weights) if args.weights else dm.checkpoint_path()
    if not weights.is_file():
        sys.exit(f"no checkpoint at {weights}: run `python manage.py build_default_model` first")
    paths = pick_files(PNG_ROOT, args.n)
    load_before = os.getloadavg()[0]
    rows = []
    t, done_b, vec_b = batched_path(paths, weights, args.threads, args.workers, args.batch_size)
    rows.append((f"batched ({args.workers} decode workers, batch {args.batch_size})", len(done_b), t))
    t, done_n, vec_n = naive_loop(paths, weights, args.threads)
    rows.append(("naive loop (decode one, encode one)", len(done_n), t))
    common = sorted(set(done_b) & set(done_n))
    pos_b = {i: k for k, i in enumerate(done_b)}
    pos_n = {i: k for k, i in enumerate(done_n)}
    cosine = float(np.mean([vec_b[pos_b[i]] @ vec_n[pos_n[i]] for i in common])) if common else float("nan")

    print(
        f"\nindexing throughput, {len(paths)} openclipart PNGs, default model, {args.threads} torch threads"
    )
    print(f"{'path':<48} {'images':>7} {'seconds':>8} {'images/s':>9}")
    for name, count, seconds in rows:
        print(f"{name:<48} {count:>7} {seconds:>8.1f} {count / seconds:>9.1f}")
    speedup = (rows[0][1] / rows[0][2]) / (rows[1][1] / rows[1][2])
    print(
        f"speed-up {speedup:.2f}x; mean cosine batched vs naive vectors {cosine:.4f} over {len(common)} images"
    )
    print(
        f"load average (1 min) before {load_before:.1f}, after {os.getloadavg()[0]:.1f}, on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
