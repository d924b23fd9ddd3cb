"""One training run in a folder: decode the manifest's images once, train with resumable checkpoints, then
precompute the attribution artifacts (per-contributor D-TRAK vectors, similarity features). No Django models here:
services.py records the outcome."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.leases import LeaseLost
from generator.conditioning import training_conditions
from generator.manifest import TrainingExample
from generator.ml.features import FeatureConfig

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
ATTRIBUTION = "attribution.npz"
DATA = "data.npz"


@dataclass
class RunConfig:
    resolution: int = 32
    steps: int = 2000
    batch_size: int = 32
    lr: float = 2e-3  # docs/generator.md, "Prompt following": 1e-3 left the model further from its condition
    ema_decay: float = 0.995
    seed: int = 0
    save_every: int = 200
    channels: tuple[int, ...] = (32, 48, 64)
    cond_layers: int = 2  # generator.ml.unet.UNetConfig says why these three
    scale_shift: bool = True
    cond_gain: bool = True
    min_snr: float = 5.0  # generator.ml.diffusion.loss_weight says why
    # the attribution recipe, as FeatureConfig defines it (flattened: recorded run configs keep this shape)
    proj_dim: int = FeatureConfig.proj_dim
    feature_timesteps: int = FeatureConfig.timesteps
    feature_noise_draws: int = FeatureConfig.noise_draws
    feature_normalise: bool = FeatureConfig.normalise
    feature_output: str = FeatureConfig.output
    lambda_rel: float = FeatureConfig.lambda_rel
    threads: int = 2
    # where training and the attribution feature pass run ("cuda" on a lent GPU); generation stays on the CPU
    device: str = "cpu"

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        """A recorded run config; runs recorded before the conditioning and loss options existed keep their
        architecture and objective."""
        data = {"cond_layers": 1, "scale_shift": False, "cond_gain": False, "min_snr": 0.0, **data}
        return cls(**{**data, "channels": tuple(data["channels"])})


def _atomic_save(obj, path: Path) -> None:
    import torch

    part = path.with_name(path.name + ".part")
    torch.save(obj, part)
    os.replace(part, path)  # a crash never leaves a half-written checkpoint under the real name


def _atomic_npz(path: Path, **arrays) -> None:
    part = path.with_name(path.name + ".part.npz")
    np.savez(part, **arrays)
    os.replace(part, path)


def prepare_data(
    run_dir: Path, examples: list[TrainingExample], resolution: int, spec: dict, progress: bool
) -> dict:
    """Decode every training image once (cached in the run folder, so a resumed run skips it)."""
    cached = run_dir / DATA
    if cached.exists():
        with np.load(cached, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    from PIL import Image
    from tqdm import tqdm

    from provenance.imaging import ImageRejected, load_rgb_path

    pixels, kept = [], []
    for i, ex in enumerate(tqdm(examples, desc="decode", disable=not progress)):
        try:
            img = load_rgb_path(ex.path, max_side=max(256, resolution)).image
        except (ImageRejected, OSError) as exc:
            log.warning("skipping %s: %s", ex.path, exc)
            continue
        pixels.append(
            np.asarray(img.resize((resolution, resolution), Image.Resampling.BICUBIC), dtype=np.uint8)
        )
        kept.append(i)
    if not kept:
        raise ValueError("no training image could be decoded")
    labels_text = [examples[i].contributor for i in kept]
    names = sorted(set(labels_text))
    index = {n: j for j, n in enumerate(names)}
    pixels_in = np.stack(pixels)
    conds = training_conditions([examples[i].caption for i in kept], pixels_in, spec)
    data = {
        "pixels": pixels_in,
        "labels": np.array([index[n] for n in labels_text], dtype=np.int64),
        "names": np.array(names),
        "kept": np.array(kept, dtype=np.int64),
        "conds": conds if conds is not None else np.zeros((len(kept), 0), dtype=np.float32),
    }
    _atomic_npz(cached, **data)
    return data


def to_tensor(pixels: np.ndarray):
    import torch

    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1


def train(
    run_dir: Path,
    data: dict,
    config: RunConfig,
    spec: dict,
    progress: bool,
    lost: threading.Event | None = None,
) -> dict:
    """Train to config.steps, resuming from run_dir/checkpoint.pt when it exists. Returns timing figures. Stops
    (LeaseLost) at the next step once `lost` is set: another worker has taken the run over."""
    import torch
    from tqdm import tqdm

    from generator.ml.diffusion import TrainConfig, train_state_new, train_steps
    from generator.ml.unet import UNet, UNetConfig

    torch.set_num_threads(config.threads)
    images = to_tensor(data["pixels"])
    conds = torch.from_numpy(data["conds"]) if spec["dim"] else None
    unet_config = UNetConfig(
        resolution=config.resolution,
        channels=tuple(config.channels),
        cond_dim=spec["dim"],
        cond_layers=config.cond_layers,
        scale_shift=config.scale_shift,
        cond_gain=config.cond_gain,
        cond_thumbnail=spec.get("thumbnail", 0),
    )
    tconf = TrainConfig(
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        ema_decay=config.ema_decay,
        seed=config.seed,
        min_snr=config.min_snr,
    )
    # the initial weights are a function of the seed alone (not of whatever used the global generator before in
    # this process), and drawn on the CPU, so a run resumed elsewhere or on a GPU starts from the same weights
    torch.manual_seed(config.seed)
    state = train_state_new(UNet(unet_config).to(config.device), tconf)
    ckpt = run_dir / CHECKPOINT
    if ckpt.exists():
        state.load_state_dict(torch.load(ckpt, weights_only=False, map_location=config.device))
        log.info("resumed from step %d", state.step)
    start_step, t0 = state.step, time.perf_counter()
    bar = tqdm(total=config.steps, initial=state.step, desc="train", disable=not progress)

    def on_step(s, loss: float) -> None:
        if lost is not None and lost.is_set():
            raise LeaseLost("another worker has taken this training run over")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if s.step % config.save_every == 0 or s.step == config.steps:
            _atomic_save(s.state_dict(), ckpt)

    for _ in train_steps(state, images, conds, tconf, on_step=on_step):
        pass
    bar.close()
    ema = {k: v.cpu() for k, v in state.ema.model.state_dict().items()}  # loadable on a machine without a GPU
    _atomic_save(
        {"unet": unet_config.to_dict(), "ema": ema, "steps": state.step},
        run_dir / MODEL,
    )
    seconds = time.perf_counter() - t0
    return {"steps_done": state.step, "resumed_from": start_step, "train_seconds": seconds}


def load_unet(run_dir: Path):
    import torch

    from generator.ml.unet import UNet, UNetConfig

    saved = torch.load(run_dir / MODEL, weights_only=False)
    model = UNet(UNetConfig.from_dict(saved["unet"]))
    model.load_state_dict(saved["ema"])
    return model.eval()


def build_attribution(run_dir: Path, data: dict, config: RunConfig, spec: dict, progress: bool) -> dict:
    """Stream each training image's projected gradient into per-contributor vectors; keep no raw gradient."""
    import torch
    from tqdm import tqdm

    from generator.ml.attribution import ContributorAccumulator, GradientFeaturizer, GramFeaturizer

    t0 = time.perf_counter()
    model = load_unet(run_dir).to(config.device)
    fconf = FeatureConfig(
        proj_dim=config.proj_dim,
        timesteps=config.feature_timesteps,
        noise_draws=config.feature_noise_draws,
        normalise=config.feature_normalise,
        output=config.feature_output,
        lambda_rel=config.lambda_rel,
    )
    featurizer = GradientFeaturizer(model, fconf, config.resolution)
    images = to_tensor(data["pixels"])
    conds = torch.from_numpy(data["conds"]) if spec["dim"] else None
    acc = ContributorAccumulator(fconf.proj_dim, len(data["names"]))
    labels = torch.from_numpy(data["labels"])
    # the pass is bound by convolution arithmetic, so it goes as fast as the cores it gets: config.threads
    # one-thread worker processes (generator/ml/attribution.py says why processes and not threads)
    features = tqdm(
        featurizer.many(images, conds, workers=config.threads if config.device == "cpu" else 1),
        total=len(images),
        desc="attribution features",
        disable=not progress,
    )
    block: list = []
    for phi in features:
        block.append(phi)
        if len(block) == 64 or acc.count + len(block) == len(images):
            acc.add_many(torch.stack(block), labels[acc.count : acc.count + len(block)])
            block = []
    if acc.count != len(images):
        raise RuntimeError(f"attribution features for {acc.count} of {len(images)} images")
    vectors = acc.solve(fconf.lambda_rel)
    gram = GramFeaturizer()(images).numpy().astype(np.float16)
    _atomic_npz(
        run_dir / ATTRIBUTION,
        vectors=vectors,
        names=data["names"],
        sim_features=gram,
        sim_labels=data["labels"],
        feature_config=np.array(json.dumps(fconf.to_dict())),
    )
    return {"feature_seconds": time.perf_counter() - t0, "feature_config": fconf.to_dict()}
