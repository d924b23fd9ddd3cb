"""A compact GroupNorm UNet for 32x32 / 64x64 images.

GroupNorm (not BatchNorm) keeps every sample in a batch independent, which the attribution relies on: the noised copies
of one image are stacked in one batch and differentiated together.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class UNetConfig:
    resolution: int = 32
    channels: tuple[int, ...] = (32, 48, 64)
    cond_dim: int = 0  # 0: unconditional
    groups: int = 8
    # How the conditioning enters (docs/generator.md, "Prompt following"): a two-layer MLP on the prompt vector, and
    # every block's embedding as a GroupNorm scale and shift (ADM's AdaGN) rather than a bias only. Models saved
    # before these options existed had neither (from_dict reads them so).
    cond_layers: int = 2
    scale_shift: bool = True
    # The unit-length condition vector enters times sqrt(its dimension), its components about 1 in size: at about
    # 1/16 (256 dimensions) Adam's equal-sized steps barely moved what the condition adds, and pictures followed
    # their prompts less (docs/generator.md, "Prompt following"). Models saved before this option had no gain.
    cond_gain: bool = True
    # The last 3 x cond_thumbnail**2 values of the condition are a small picture (channels first, in [-1, 1]):
    # upsampled to the image and read beside it by the first convolution (0: none).
    cond_thumbnail: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> UNetConfig:
        data = {"cond_layers": 1, "scale_shift": False, "cond_gain": False, **data}
        data["channels"] = tuple(data.get("channels", cls.channels))
        return cls(**data)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, groups: int, scale_shift: bool = False):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout * 2 if scale_shift else cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb(emb)[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class UNet(nn.Module):
    """Predicts v from (noised image, timestep, optional conditioning vector)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        ch = config.channels
        emb_dim = ch[0] * 4
        self.time_mlp = nn.Sequential(nn.Linear(ch[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.thumb_dim = 3 * config.cond_thumbnail**2
        vector_dim = config.cond_dim - self.thumb_dim
        self.cond_proj = _cond_mlp(vector_dim, emb_dim, config.cond_layers) if config.cond_dim else None
        self.inp = nn.Conv2d(6 if self.thumb_dim else 3, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        cin = ch[0]
        for i, c in enumerate(ch):
            self.down.append(ResBlock(cin, c, emb_dim, config.groups, config.scale_shift))
            cin = c
            last = i == len(ch) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.mid = ResBlock(cin, cin, emb_dim, config.groups, config.scale_shift)
        self.up = nn.ModuleList()
        for c in reversed(ch):
            self.up.append(ResBlock(cin + c, c, emb_dim, config.groups, config.scale_shift))
            cin = c
        self.out_norm = nn.GroupNorm(min(config.groups, cin), cin)
        self.out = nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.channels[0]))
        if self.thumb_dim:
            x = torch.cat([x, self._thumbnail(cond, x)], dim=1)
            cond = None if cond is None else cond[:, : -self.thumb_dim]
        if self.cond_proj is not None and cond is not None:
            gain = math.sqrt(cond.shape[1]) if self.config.cond_gain else 1.0
            emb = emb + self.cond_proj(cond * gain)
        h = self.inp(x)
        skips = []
        for block, down in zip(self.down, self.downsample, strict=True):
            h = block(h, emb)
            skips.append(h)
            h = down(h)
        h = self.mid(h, emb)
        for block in self.up:
            skip = skips.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))

    def _thumbnail(self, cond: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        """The condition's thumbnail at the image's size (zeros, mid grey, without a condition)."""
        if cond is None:
            return torch.zeros_like(x)
        side = self.config.cond_thumbnail
        small = cond[:, -self.thumb_dim :].reshape(-1, 3, side, side)
        return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _cond_mlp(cond_dim: int, emb_dim: int, layers: int) -> nn.Module:
    if layers == 1:
        return nn.Linear(cond_dim, emb_dim)  # the layout of models saved before cond_layers existed
    return nn.Sequential(nn.Linear(cond_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
