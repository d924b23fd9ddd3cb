"""v-prediction DDPM training and DDIM sampling on a cosine schedule.

v-prediction, not noise prediction: at this model size and step budget noise prediction gave pure noise on clip art
(see /work/shared/notes/attribution.md), v-prediction gave usable samples.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn

T_STEPS = 1000


@dataclass
class TrainConfig:
    steps: int = 600
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    ema_decay: float = 0.995
    cond_drop: float = 0.1  # classifier-free guidance: train the unconditional model too
    hflip: bool = False  # mirrored copies would blur which training work a sample leans on
    # Min-SNR-gamma weighting (Hang et al. 2023; 0: every timestep's v error counts alike). docs/generator.md
    # ("Prompt following") has what it measured here.
    min_snr: float = 5.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal), t in [0, T_STEPS)."""
    s = 0.008
    x = (t.float() + 1) / T_STEPS
    return (torch.cos((x + s) / (1 + s) * math.pi / 2) ** 2).clamp(1e-5, 0.9999)


def noise_pair(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The noised image x_t and its v target."""
    ab = alpha_bar(t)[:, None, None, None]
    a, s = ab.sqrt(), (1 - ab).sqrt()
    return a * x0 + s * eps, a * eps - s * x0


def loss_weight(t: torch.Tensor, min_snr: float) -> torch.Tensor:
    """Each timestep's weight on its v error: min(SNR, gamma) / (SNR + 1), i.e. the x0 error weighed by SNR capped at
    gamma. The v error alone weighs the x0 error by SNR + 1, so the nearly clean steps, which only polish detail,
    would dominate; capped, the loss spends the small model on the noisy steps where the picture's content, and so
    the prompt, is decided. 1 everywhere when min_snr is 0."""
    if not min_snr:
        return torch.ones_like(t, dtype=torch.float32)
    snr = alpha_bar(t) / (1 - alpha_bar(t))
    return snr.clamp(max=min_snr) / (snr + 1)


def v_loss(
    model: nn.Module, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, cond: torch.Tensor | None
) -> torch.Tensor:
    """Per-sample mean squared error on v, shape (batch,)."""
    xt, v = noise_pair(x0, t, eps)
    return (model(xt, t, cond) - v).pow(2).flatten(1).mean(1)


class Ema:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - self.decay)


@dataclass
class TrainState:
    model: nn.Module
    ema: Ema
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    step: int = 0

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.model.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        torch.set_rng_state(state["rng"].cpu())  # a checkpoint loaded onto a GPU moved it there


def lr_multiplier(config: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to zero at config.steps."""
    warmup = max(1, min(50, config.steps // 10))

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, config.steps - warmup))))

    return lr_at


def train_state_new(model: nn.Module, config: TrainConfig) -> TrainState:
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(config))
    return TrainState(model, Ema(model, config.ema_decay), optimizer, scheduler)


def step_generator(config: TrainConfig, step: int) -> torch.Generator:
    """The CPU generator of one training step's draws (batch, timesteps, noise): a function of (seed, step) only."""
    return torch.Generator().manual_seed(config.seed * 1_000_003 + step)


def train_steps(
    state: TrainState,
    images: torch.Tensor,
    conds: torch.Tensor | None,
    config: TrainConfig,
    *,
    on_step: Callable[[TrainState, float], None] | None = None,
) -> Iterator[float]:
    """Run from state.step to config.steps, yielding the loss of each step. images: (n, 3, H, W) in [-1, 1].

    The batch order depends only on (seed, step), so a run resumed from a checkpoint sees the same batches."""
    n = images.shape[0]
    model = state.model.train()
    # the draws come from a CPU generator whatever the model's device, so a GPU run sees the same batches and noise
    device = next(model.parameters()).device
    while state.step < config.steps:
        g = step_generator(config, state.step)
        idx = torch.randint(0, n, (config.batch_size,), generator=g)
        x0 = images[idx]
        if config.hflip and torch.rand(1, generator=g).item() < 0.5:
            x0 = x0.flip(-1)  # clip art survives a mirror; doubles the data
        t = torch.randint(0, T_STEPS, (config.batch_size,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        cond = None
        if conds is not None:
            keep = (torch.rand(config.batch_size, generator=g) >= config.cond_drop).float()[:, None]
            cond = (conds[idx] * keep).to(device)
        x0, t, eps = x0.to(device), t.to(device), eps.to(device)
        loss = (v_loss(model, x0, t, eps, cond) * loss_weight(t, config.min_snr)).mean()
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        state.optimizer.step()
        state.scheduler.step()
        state.ema.update(model)
        state.step += 1
        if on_step is not None:
            on_step(state, loss.item())
        yield loss.item()


@torch.no_grad()
def ddim_sample(
    model: nn.Module,
    *,
    n: int,
    resolution: int,
    seed: int,
    cond: torch.Tensor | None = None,
    steps: int = 50,
    guidance: float = 1.0,
) -> torch.Tensor:
    """Deterministic DDIM (eta = 0). Returns images in [-1, 1], shape (n, 3, R, R). cond: (n, d) or None."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, 3, resolution, resolution), generator=g)
    ts = torch.linspace(T_STEPS - 1, 0, steps).round().long()
    for i, t in enumerate(ts):
        tt = t.repeat(n)
        v = _guided_v(model, x, tt, cond, guidance)
        ab = alpha_bar(tt)[:, None, None, None]
        a, s = ab.sqrt(), (1 - ab).sqrt()
        x0 = (a * x - s * v).clamp(-1, 1)
        eps = (x - a * x0) / s
        if i + 1 < len(ts):
            ab_next = alpha_bar(ts[i + 1].repeat(n))[:, None, None, None]
            x = ab_next.sqrt() * x0 + (1 - ab_next).sqrt() * eps
        else:
            x = x0
    return x


def _guided_v(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None, guidance: float
) -> torch.Tensor:
    if cond is None or guidance == 1.0:
        return model(x, t, cond)
    both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, torch.zeros_like(cond)]))
    v_c, v_u = both.chunk(2)
    return v_u + guidance * (v_c - v_u)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(n, 3, H, W) in [-1, 1] -> (n, H, W, 3) uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
