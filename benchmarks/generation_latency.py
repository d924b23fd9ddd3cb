"""Latency of one generated image with its attribution (DDIM sampling + one gradient feature + similarity).

    nice -n 10 .venv/bin/python benchmarks/generation_latency.py [--repeats 10]

Builds a small throwaway generator (a few real openclipart works, a few training steps: sampling and attribution
cost do not depend on how well it is trained) at 32 and 64 px with the product's conditioning (the default model's
image embeddings when it is built) and guidance, then times `LoadedGenerator.sample` per image (prompt encoding,
guided DDIM, attribution). No Django database needed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")  # the product's generator settings


def build(run_dir: Path, resolution: int, timesteps: int, draws: int, works: list[Path]):
    from generator import conf
    from generator.conditioning import conditioning_spec
    from generator.manifest import TrainingExample
    from generator.training import RunConfig, build_attribution, prepare_data, train

    spec = conditioning_spec(conf.get("GENERATOR_CONDITIONING"))
    examples = [
        TrainingExample(path=str(p), caption=p.stem, contributor=f"c{i % 16}") for i, p in enumerate(works)
    ]
    run = RunConfig(
        resolution=resolution,
        steps=5,
        save_every=1000,
        feature_timesteps=timesteps,
        feature_noise_draws=draws,
        threads=2,
    )
    data = prepare_data(run_dir, examples, resolution, spec, progress=False)
    train(run_dir, data, run, spec, progress=False)
    build_attribution(run_dir, data, run, spec, progress=False)
    return spec


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--sampling-steps", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import django

    django.setup()  # the generator's training module reads its lease models
    import torch

    from generator import conf
    from generator.ml.features import FeatureConfig
    from generator.runtime import LoadedGenerator

    product = FeatureConfig()  # the recipe the product trains with and the LDS benchmark measures

    torch.set_num_threads(args.threads)
    works = sorted(Path("/usr/share/openclipart/png").rglob("*.png"))[:64:2]
    print(f"{'resolution':>10s} {'feature probes':>15s} {'median s':>9s} {'max s':>7s}")
    for resolution in (32, 64):
        # the product's probes beside the old default's (20 x 1)
        for timesteps, draws in ((product.timesteps, product.noise_draws), (20, 1)):
            with tempfile.TemporaryDirectory() as tmp:
                spec = build(Path(tmp), resolution, timesteps, draws, works)
                torch.set_num_threads(args.threads)
                guidance = conf.get("GENERATOR_GUIDANCE")
                gen = LoadedGenerator(Path(tmp), spec, resolution, args.sampling_steps, guidance, 5)
                gen.sample("warm up", 0)
                times = []
                for seed in range(args.repeats):
                    t0 = time.perf_counter()
                    gen.sample("a red apple", seed)
                    times.append(time.perf_counter() - t0)
            print(
                f"{resolution:>10d} {f'{timesteps} x {draws}':>15s} {statistics.median(times):9.3f} "
                f"{max(times):7.3f}",
                flush=True,
            )
    print(
        f"({args.sampling_steps} DDIM steps, guidance {conf.get('GENERATOR_GUIDANCE')}, conditioning "
        f"{spec['kind']}, torch threads {args.threads}, {args.repeats} images each; load "
        f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}; product "
        f"probes {product.timesteps} x {product.noise_draws}, unit-normalised={product.normalise}, output {product.output})"
    )


if __name__ == "__main__":
    main()
