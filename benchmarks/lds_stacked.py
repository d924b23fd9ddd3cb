"""The LDS benchmark's models, all trained at once: the full model and every subset model of several seed sets stacked
into one vectorised model (torch.func.vmap over stacked parameters), so a GPU trains them in one pass per step.

    python benchmarks/lds_stacked.py --dataset var/benchmarks/lds-work-600/c16w40s600b32r32seed0/dataset.pt \\
        --work var/benchmarks/lds-long --device cuda --seed-sets 0,1,2,3 --train-budget 380

Each member trains exactly as `attribution_lds.train_model` would train it alone: the same initial weights, batches,
timesteps and noise per step (the same CPU generators), AdamW, cosine schedule, per-member gradient clipping and EMA,
so the stacked run is the sequential one computed side by side (benchmarks/tests/test_lds_stacked.py checks this).
--train-budget picks the step count from the measured step time (rounded down to 100) when --steps is not given.

More seed sets or extra subsets for an existing run: --generated-file W/generated.pt probes that run's generated
images (this run's full model then only trains alongside), e.g. --seed-sets 1,2,3 --steps 600, or --seed-sets 0
--extra-subsets 224 for the datamodel ceiling; copy the subset JSONs into W.

A conditioned recipe (the product's image conditioning, e.g. the confirmation run): attribution_lds.py trains its full
model and draws its generated images here, where the default model is, and writes W/conditions.pt; then
`--conditions W/conditions.pt --generated-file W/generated.pt --seed S` trains the subsets under the same conditions
(condition dropout drawn as the lone trainer draws it) and probes each generated image under its own prompt.

Writes into the work folder what `attribution_lds.py --analyse-only` reads: dataset.pt, full-model.pt, generated.pt
(48 DDIM samples of the full model, on the CPU) and each subset's probe losses (subset{k}-sameseed[-set{j}].json);
then, on this machine, `attribution_lds.py --work W --steps S --analyse-only --seed-sets 0,1,2,3` computes the
features and the table. With --tar, the same files go into one archive (the device tool brings back $OUT).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attribution_lds import (  # noqa: E402
    extra_subset_masks,
    save_grid,
    subset_cache_name,
    subset_mask,
    train_model,
    unet_config,
)

from generator.ml.diffusion import (  # noqa: E402
    T_STEPS,
    TrainConfig,
    ddim_sample,
    loss_weight,
    lr_multiplier,
    noise_pair,
    step_generator,
)
from generator.ml.unet import UNet  # noqa: E402


class StackedTrainer:
    """members: (training seed, row indices into images) per member; every member shares the batch size and steps.
    conds: each image's condition (n, d), as attribution_lds.conditioning gives it; None trains unconditional models."""

    def __init__(
        self,
        images,
        members: list[tuple[int, torch.Tensor]],
        config: TrainConfig,
        resolution: int,
        device,
        conds: torch.Tensor | None = None,
    ):
        if config.hflip:
            raise ValueError("the stacked trainer draws no mirror flips: train with hflip off")
        self.images = images.to(device)
        self.conds = None if conds is None else conds.to(device)
        self.seeds = [seed for seed, _ in members]
        self.rows = [rows for _, rows in members]
        self.config = config
        self.device = device
        # the architecture attribution_lds.train_model gives a lone model of this recipe
        self.unet_config = unet_config(
            SimpleNamespace(resolution=resolution), 0 if conds is None else conds.shape[1]
        )
        models = [self._initial_model(seed) for seed in self.seeds]
        self.base = UNet(self.unet_config).to("meta")
        params, _ = stack_module_state(models)
        # detached first: .to() of a leaf that requires grad is not a leaf, and an optimizer needs leaves
        self.params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
        self.ema = {k: v.detach().clone() for k, v in self.params.items()}
        self.optimizer = torch.optim.AdamW(
            self.params.values(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_multiplier(config))
        self.step = 0

    def _initial_model(self, seed: int) -> UNet:
        torch.manual_seed(seed)
        return UNet(self.unet_config)

    def _forward(self, params, x, t, cond=None):
        return functional_call(self.base, params, (x, t, cond))

    def _draws(self):
        """Per member: batch rows and timesteps, and which draw group's noise (and condition dropout) it takes.
        Members with the same seed and data size draw the same (one generator per group, as a lone model with that
        seed would use), in diffusion.train_steps's order: rows, timesteps, noise, then which conditions are kept."""
        groups: dict[tuple[int, int], int] = {}
        draws, rows, ts, group_of = [], [], [], []
        b = self.config.batch_size
        for seed, member_rows in zip(self.seeds, self.rows, strict=True):
            key = (seed, len(member_rows))
            if key not in groups:
                g = step_generator(TrainConfig(seed=seed), self.step)
                idx = torch.randint(0, len(member_rows), (b,), generator=g)
                t = torch.randint(0, T_STEPS, (b,), generator=g)
                eps = torch.randn((b, *self.images.shape[1:]), generator=g)
                keep = torch.ones(b)
                if self.conds is not None:
                    keep = (torch.rand(b, generator=g) >= self.config.cond_drop).float()
                groups[key] = len(draws)
                draws.append((idx, t, eps, keep))
            idx, t, _, _ = draws[groups[key]]
            rows.append(member_rows[idx])
            ts.append(t)
            group_of.append(groups[key])
        noise = torch.stack([d[2] for d in draws])
        keeps = torch.stack([d[3] for d in draws])
        return torch.stack(rows), torch.stack(ts), noise, keeps, torch.tensor(group_of)

    def train_step(self) -> torch.Tensor:
        rows, t, noise, keeps, group_of = (x.to(self.device) for x in self._draws())
        x0 = self.images[rows]
        # expanded on the device: one noise tensor per group crosses the bus
        eps = noise[group_of]
        xt, v = noise_pair(x0.flatten(0, 1), t.flatten(), eps.flatten(0, 1))
        if self.conds is None:
            pred = vmap(self._forward)(self.params, xt.view_as(x0), t)
        else:
            cond = self.conds[rows] * keeps[group_of][:, :, None]
            pred = vmap(self._forward)(self.params, xt.view_as(x0), t, cond)
        weights = loss_weight(t.flatten(), self.config.min_snr).view(t.shape)
        losses = ((pred - v.view_as(x0)).pow(2).flatten(2).mean(2) * weights).mean(1)
        self.optimizer.zero_grad(set_to_none=True)
        # each member's gradient is its own mean loss's
        losses.sum().backward()
        self._clip_per_member(1.0)
        self.optimizer.step()
        self.scheduler.step()
        with torch.no_grad():
            for k, p in self.params.items():
                self.ema[k].lerp_(p.detach(), 1 - self.config.ema_decay)
        self.step += 1
        return losses.detach()

    def _clip_per_member(self, max_norm: float) -> None:
        """clip_grad_norm_ per member: one member's large gradient must not shrink another's step."""
        grads = [p.grad for p in self.params.values()]
        norms = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *[1] * (g.dim() - 1)))

    def ema_model(self, member: int) -> UNet:
        model = UNet(self.unet_config)
        model.load_state_dict({k: v[member].cpu() for k, v in self.ema.items()})
        return model.eval()

    @torch.no_grad()
    def probe_losses(
        self,
        members: list[int],
        gen: torch.Tensor,
        n_t: int = 50,
        draws: int = 2,
        seed: int = 99,
        gen_conds: torch.Tensor | None = None,
    ):
        """attribution_lds.probe_losses for many EMA members at once: (members, generated images), each image
        under its own prompt's condition when gen_conds is given."""
        g = torch.Generator().manual_seed(seed)
        ts = torch.linspace(0, T_STEPS - 1, n_t).round().long().repeat(draws)
        eps = torch.randn((ts.shape[0], *gen.shape[1:]), generator=g)
        ts, eps = ts.to(self.device), eps.to(self.device)
        params = {k: v[members] for k, v in self.ema.items()}
        out = []
        for i, x in enumerate(gen.to(self.device)):
            xt, v = noise_pair(x[None].expand(ts.shape[0], -1, -1, -1), ts, eps)
            cond = None if gen_conds is None else gen_conds[i].to(self.device)[None].expand(ts.shape[0], -1)
            pred = vmap(self._forward, in_dims=(0, None, None, None))(params, xt, ts, cond)
            out.append((pred - v).pow(2).flatten(2).mean(2).mean(1))
        return torch.stack(out, 1).cpu().numpy()


def build_members(labels: np.ndarray, n_subsets: int, seed: int, seed_sets: list[int], extra: int = 0):
    """Member 0: the full model (seed); then subset k of seed set j for each j, k (seed + 1000 j, same masks).
    extra: more random half-subsets after the benchmark's K (k = K, K + 1, ...), as attribution_lds.py
    --extra-subsets reads them."""
    n_c = int(labels.max()) + 1
    rng = np.random.default_rng(seed + 1)
    masks = [subset_mask(rng, n_c) for _ in range(n_subsets)] + extra_subset_masks(seed, n_c, extra)
    members = [(seed, torch.arange(len(labels)))]
    names = [None]
    for j in seed_sets:
        for k, mask in enumerate(masks):
            members.append((seed + 1000 * j, torch.as_tensor(np.flatnonzero(mask[labels]))))
            names.append((k, j, mask))
    return members, names


def time_step(trainer: StackedTrainer, warmup: int = 5, timed: int = 20) -> float:
    """Seconds per step, measured on a throw-away trainer (the steps it takes change its weights)."""
    # kernel selection, allocator
    for _ in range(warmup):
        trainer.train_step()
    _sync(trainer.device)
    t0 = time.perf_counter()
    for _ in range(timed):
        trainer.train_step()
    _sync(trainer.device)
    return (time.perf_counter() - t0) / timed


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def plan(images, labels, args, conds=None) -> tuple[list[int], int, float | None]:
    """(seed sets, steps, measured seconds per step). With --train-budget, the steps the budget allows; seed sets are
    dropped from the end (not below --min-seed-sets) while that is under --prefer-steps."""
    seed_sets = [int(j) for j in args.seed_sets.split(",")]
    if args.steps is not None:
        return seed_sets, args.steps, None
    while True:
        members, _ = build_members(labels, args.subsets, args.seed, seed_sets)
        timing = TrainConfig(steps=100, batch_size=args.batch_size, seed=args.seed)
        per_step = time_step(StackedTrainer(images, members, timing, images.shape[-1], args.device, conds))
        steps = max(args.min_steps, min(6000, int(args.train_budget / per_step) // 100 * 100))
        print(f"{len(members)} members: {per_step * 1000:.1f} ms per step -> {steps} steps", flush=True)
        if steps >= args.prefer_steps or len(seed_sets) <= args.min_seed_sets:
            return seed_sets, steps, per_step
        seed_sets = seed_sets[:-1]


def train(
    images, members, config: TrainConfig, device, deadline: float = math.inf, conds=None
) -> tuple[StackedTrainer, float]:
    """Stops early at the deadline (a perf_counter time): every member is then at the same step, so the subsets
    still compare with each other and with the full model; the run records the steps done."""
    trainer = StackedTrainer(images, members, config, images.shape[-1], device, conds)
    t0 = time.perf_counter()
    while trainer.step < config.steps and time.perf_counter() < deadline:
        losses = trainer.train_step()
        if trainer.step % 200 == 0 or trainer.step == config.steps:
            print(
                f"step {trainer.step}/{config.steps}: mean loss {losses.mean().item():.4f} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    _sync(device)
    return trainer, time.perf_counter() - t0


def stacked_minus_alone(images, labels, args, steps: int = 20, conds=None) -> float:
    """Largest weight difference between three stacked members and the same models trained alone, on this device
    and with these precision settings (the unit test checks the CPU in fp32)."""
    members, _ = build_members(labels, 1, args.seed, [0, 1])
    config = TrainConfig(steps=steps, batch_size=args.batch_size, seed=args.seed)
    trainer, _ = train(images, members, config, args.device, conds=conds)
    alone_args = SimpleNamespace(
        resolution=images.shape[-1], device=args.device, steps=steps, batch_size=args.batch_size
    )
    worst = 0.0
    for m, (seed, rows) in enumerate(members):
        alone_conds = None if conds is None else conds[rows]
        alone = train_model(images[rows], alone_args, seed=seed, conds=alone_conds).state_dict()
        stacked = trainer.ema_model(m).state_dict()
        worst = max(worst, max((stacked[k] - alone[k].cpu()).abs().max().item() for k in stacked))
    return worst


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    data = torch.load(args.dataset)
    images, labels = data["images"], np.array(data["labels"])
    conditions = torch.load(args.conditions) if args.conditions else {}
    conds, gen_conds = conditions.get("train"), conditions.get("generated")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    # fixed shapes: pick the fastest grouped convolution once
    torch.backends.cudnn.benchmark = True
    check = stacked_minus_alone(images, labels, args, conds=conds) if args.check else None
    if check is not None:
        print(f"stacked vs alone, 20 steps: max weight difference {check:.2e}", flush=True)
    seed_sets, steps, per_step = plan(images, labels, args, conds)
    members, names = build_members(labels, args.subsets, args.seed, seed_sets, args.extra_subsets)
    config = TrainConfig(steps=steps, batch_size=args.batch_size, seed=args.seed)
    trainer, train_s = train(
        images, members, config, args.device, deadline=t_start + args.deadline, conds=conds
    )
    res = images.shape[-1]
    work = (
        Path(args.work)
        / f"c{labels.max() + 1}w{np.bincount(labels).min()}s{steps}b{args.batch_size}r{res}seed{args.seed}"
    )
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.dataset, work / "dataset.pt")

    t0 = time.perf_counter()
    # another run's generated images (its full model then is not this one)
    if args.generated_file:
        gen = torch.load(args.generated_file)
        shutil.copy(args.generated_file, work / "generated-probed.pt")
    else:
        full = trainer.ema_model(0)
        torch.save(full.state_dict(), work / "full-model.pt")
        gen = ddim_sample(
            full,
            n=args.generated,
            resolution=res,
            seed=args.seed + 10_000,
            cond=gen_conds,
            guidance=conditions.get("guidance", 1.0),
        )
        torch.save(gen, work / "generated.pt")
        save_grid(gen, work / "generated.png")
    sample_s = time.perf_counter() - t0

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    t0 = time.perf_counter()
    losses = trainer.probe_losses(list(range(1, len(members))), gen, gen_conds=gen_conds)
    probe_s = time.perf_counter() - t0
    for (k, j, mask), loss in zip(names[1:], losses, strict=True):
        record = {"mask": mask.tolist(), "loss": loss.tolist(), "device": args.device, "trainer": "stacked"}
        (work / subset_cache_name("same", k, j)).write_text(json.dumps(record))
    run = {
        "members": len(members),
        "steps": steps,
        "steps_done": trainer.step,
        "seed_sets": seed_sets,
        "ms_per_step_measured": None if per_step is None else per_step * 1000,
        "stacked_minus_alone_max_weight_difference": check,
        "train_s": train_s,
        "sample_s": sample_s,
        "probe_s": probe_s,
        "total_s": time.perf_counter() - t_start,
        "tf32": args.tf32,
        "device": torch.cuda.get_device_name() if str(args.device).startswith("cuda") else "cpu",
    }
    (work / "stacked-run.json").write_text(json.dumps(run, indent=2))
    print(json.dumps(run), flush=True)
    if args.tar:
        with tarfile.open(args.tar, "w:gz") as tar:
            for path in sorted(work.iterdir()):
                # the input, already where the analysis runs
                if path.name != "dataset.pt":
                    tar.add(path, arcname=f"{work.name}/{path.name}")


def _parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", required=True, help="an LDS work folder's dataset.pt (images, labels, names)")
    p.add_argument("--work", required=True)
    p.add_argument("--steps", type=int, help="default: what --train-budget allows")
    p.add_argument("--train-budget", type=float, default=300.0, help="seconds of training, without --steps")
    p.add_argument("--min-steps", type=int, default=600, help="the fewest steps --train-budget may choose")
    p.add_argument("--prefer-steps", type=int, default=0, help="drop seed sets while the budget allows fewer")
    p.add_argument("--min-seed-sets", type=int, default=1)
    p.add_argument(
        "--deadline", type=float, default=math.inf, help="seconds from the start: stop training then"
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--subsets", type=int, default=16)
    p.add_argument("--seed-sets", default="0,1,2,3")
    p.add_argument(
        "--extra-subsets", type=int, default=0, help="more random half-subsets, for a datamodel fit"
    )
    p.add_argument("--generated-file", help="probe these generated images (another run's generated.pt)")
    p.add_argument(
        "--conditions",
        help="a conditioned run's conditions.pt (attribution_lds.py writes it into its work folder): every "
        "model trains on each work's condition and each generated image is probed under its own prompt's",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--generated", type=int, default=48)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--tf32", action="store_true", help="TF32 matrix units for training (probes stay full fp32)"
    )
    p.add_argument("--check", action="store_true", help="first compare 3 stacked members with lone models")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--tar", help="also write the work folder's files into this .tgz")
    return p.parse_args()


if __name__ == "__main__":
    main()
