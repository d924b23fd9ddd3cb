"""Indexing throughput: the batched, parallel-decoding encoder path against a naive single-process open_clip loop.

    DJANGO_SETTINGS_MODULE=config.settings.dev python benchmarks/indexing_throughput.py --n 400 --threads 1,2

Both run the default model (`provenant-lite0-minilm`, the checkpoint built by `manage.py build_default_model`)
over the same N openclipart PNGs (every k-th file of /usr/share/openclipart/png, sorted), and both decode through
provenance.imaging (bomb guard included).

- naive: for each file, decode it, preprocess it, `model.encode_image` on a batch of one, in this process;
- batched: `OpenClipEncoder.encode_paths`: decoding and preprocessing in DataLoader worker processes, batches of 64,
  channels-last trunk, `torch.inference_mode`.
Both decode at most DECODE_MAX_SIDE (512 px; the tower sees 224), so only the path differs. Each --threads value
(torch intra-op threads, the same for both paths) is one pair of rows: on 2 cores, 2 threads beside 2 decoding
processes oversubscribe the machine, which 1 thread shows.

It prints images/s for each, the speed-up, the mean cosine between the two paths' vectors of the same image (the
same decode, so about 1), and the load average before and after each run, since the machine may be shared.
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
    from embeddings.encoders.batch_decode import DECODE_MAX_SIDE
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
            image = load_rgb_path(path, max_side=DECODE_MAX_SIDE).image
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
    parser.add_argument(
        "--threads",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2],
        help="torch intra-op threads of both paths, one pair of runs per value (comma-separated)",
    )
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
    print(f"indexing throughput, {len(paths)} openclipart PNGs, default model, on {os.cpu_count()} CPUs")
    print(
        f"{'path':<48} {'threads':>7} {'images':>7} {'seconds':>8} {'images/s':>9} {'load before/after':>18}"
    )
    for threads in args.threads:
        runs = {
            f"batched ({args.workers} decode workers, batch {args.batch_size})": lambda t=threads: (
                batched_path(paths, weights, t, args.workers, args.batch_size)
            ),
            "naive loop (decode one, encode one)": lambda t=threads: naive_loop(paths, weights, t),
        }
        measured = []
        for name, run in runs.items():
            load_before = os.getloadavg()[0]
            seconds, done, vectors = run()
            measured.append((len(done) / seconds, done, vectors))
            print(
                f"{name:<48} {threads:>7} {len(done):>7} {seconds:>8.1f} {len(done) / seconds:>9.1f} "
                f"{load_before:>9.1f} / {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        (rate_b, done_b, vec_b), (rate_n, done_n, vec_n) = measured
        pos_n = {i: k for k, i in enumerate(done_n)}
        cosines = [vec_b[k] @ vec_n[pos_n[i]] for k, i in enumerate(done_b) if i in pos_n]
        print(
            f"  {threads} thread(s): speed-up {rate_b / rate_n:.2f}x; mean cosine batched vs naive vectors "
            f"{float(np.mean(cosines)) if cosines else float('nan'):.4f} over {len(cosines)} images"
        )


if __name__ == "__main__":
    main()
