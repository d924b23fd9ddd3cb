"""D-TRAK-style contributor attribution and a style-similarity baseline (pure functions on tensors).

Gradient method: phi(x) = P grad_theta mean_k f(v_theta(x_{t_k}, t_k), v*_k) over fixed timesteps and noise draws,
P a CountSketch (fixed seed), f the output function (OUTPUTS). Per contributor c: v_c = (Phi^T Phi + lambda I)^-1
sum_{i in c} phi_i, accumulated by streaming (raw per-image gradients are never held). A generated image g scores
tau_c = phi(g) . v_c.

Why f = 1/2 ||v||^2 - ||v - v*||^2 ("main-effect"): write a contributor's effect on a probe's output as a_c (outputs
additive in contributors, v_full = v_0 + A with A = sum_c a_c) and r = v_full - v* the full model's residual. Removing
the set R of contributors gives the loss ||r - sum_{c in R} a_c||^2, quadratic in R. Over uniformly random halves of
n contributors (what the LDS benchmark trains on), the best additive fit of that loss gives contributor c the main
effect n/(n-1) a_c . (A - 2 r) (the ||a_c||^2 terms cancel exactly), i.e. a_c . (2 v* - v_full - v_0). Taking v_0 = 0
this is the directional derivative of f along c's parameter change: D-TRAK's squared norm of v (f = ||v||^2) keeps
only the A term and TRAK's diffusion loss only the r term; each scored lower on the benchmark than both together
(docs/generator.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from generator.ml.diffusion import T_STEPS, noise_pair
from generator.ml.features import OUTPUT_NAMES, FeatureConfig

METHOD_VERSION_SIMILARITY = "gram-randconv-topk-v1"


def _main_effect(v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * v.pow(2).flatten(1).sum(1) - (v - target).pow(2).flatten(1).sum(1)


def _v_norm(v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return v.pow(2).flatten(1).sum(1)


# Per-probe scalar outputs whose parameter gradients are the features (the module docstring says why main-effect).
OUTPUTS = {"main-effect": _main_effect, "vnorm": _v_norm}
assert tuple(OUTPUTS) == OUTPUT_NAMES  # the recipe validates against the names, without importing torch


class CountSketch:
    """Random projection of a flat gradient: each coordinate goes to one bucket with a random sign."""

    def __init__(self, n_params: int, dim: int, seed: int, device: torch.device | str = "cpu"):
        g = torch.Generator().manual_seed(seed)  # drawn on the CPU: the same sketch on every device
        self.dim = dim
        self.bucket = torch.randint(0, dim, (n_params,), generator=g).to(device)
        self.sign = (torch.randint(0, 2, (n_params,), generator=g).float() * 2 - 1).to(device)

    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        return torch.zeros(self.dim, device=flat.device).index_add_(0, self.bucket, flat * self.sign)


def _probe(config: FeatureConfig, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed timesteps and noise shared by every image, so that features are comparable."""
    k = config.timesteps * config.noise_draws
    g = torch.Generator().manual_seed(config.seed + 1)
    # Evenly spread timesteps, avoiding the very ends where v carries little information about the image.
    ts = torch.linspace(0.05 * T_STEPS, 0.95 * T_STEPS, config.timesteps).round().long()
    ts = ts.repeat(config.noise_draws)
    eps = torch.randn((k, 3, resolution, resolution), generator=g)
    return ts, eps


class GradientFeaturizer:
    def __init__(self, model: nn.Module, config: FeatureConfig, resolution: int):
        self.output = OUTPUTS[config.output]
        self.model = model.eval()
        self.config = config
        self.params = [p.requires_grad_(True) for p in model.parameters()]  # an EMA copy has them off
        self.resolution = resolution
        # on the model's device (a GPU when training ran there); features come back on the CPU
        self.device = self.params[0].device
        self.sketch = CountSketch(
            sum(p.numel() for p in self.params), config.proj_dim, config.seed, self.device
        )
        self.ts, self.eps = (t.to(self.device) for t in _probe(config, resolution))

    def __call__(self, x0: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x0: (3, H, W) in [-1, 1]; cond: (d,) or None. One backward pass over all noised copies."""
        k = self.ts.shape[0]
        x0 = x0.to(self.device)
        xt, target = noise_pair(x0[None].expand(k, -1, -1, -1), self.ts, self.eps)
        c = None if cond is None else cond.to(self.device)[None].expand(k, -1)
        with torch.enable_grad():
            out = self.output(self.model(xt, self.ts, c), target).mean()
            grads = torch.autograd.grad(out, self.params, allow_unused=True)
        flat = torch.cat(
            [
                (g if g is not None else torch.zeros_like(p)).reshape(-1)
                for g, p in zip(grads, self.params, strict=True)
            ]
        )
        phi = self.sketch(flat).cpu()
        return unit_normalise(phi) if self.config.normalise else phi

    def many(
        self, images: torch.Tensor, conds: torch.Tensor | None = None, *, workers: int = 1, chunk: int = 32
    ) -> Iterator[torch.Tensor]:
        """The features of every image, in order. workers > 1: chunks go to that many one-thread processes.

        Why processes and not one batched pass: per-sample gradients with torch.func (vmap over grad) gave the same
        features 5x slower on this CPU, and the per-copy cost of a forward + backward is flat from batch 5 to 160
        (about 10 ms at 32 px): the pass is bound by convolution arithmetic (12.6 GFLOP per image at 20 probes,
        ~76 GFLOP/s on one core, sgemm peaks at ~92), so only more cores make it faster. Processes, not torch
        threads: two OpenMP threads collapse (to ~1 image/s) when another job holds a core, two processes share it.
        """
        n = images.shape[0]
        if workers <= 1 or n <= chunk:
            for i in range(n):
                yield self(images[i], None if conds is None else conds[i])
            return
        # billiard (Celery's fork of multiprocessing), not multiprocessing: a Celery prefork pool process is
        # daemonic, and multiprocessing refuses a daemonic process children ("daemonic processes are not allowed
        # to have children"), which left the pass on one core under the pool deployments use; billiard lets it
        # have them. fork (what torch's DataLoader workers do): the children share the parent's pages and need no
        # importable __main__. A forked child would hang in its first OpenMP parallel region; one torch thread
        # per child, set before any work, runs none.
        import billiard

        jobs = (
            (images[i : i + chunk].numpy(), None if conds is None else conds[i : i + chunk].numpy())
            for i in range(0, n, chunk)
        )
        pool = billiard.get_context("fork").Pool(
            min(workers, -(-n // chunk)),
            initializer=_worker_start,
            initargs=(self.model, self.config, self.resolution),
        )
        with pool:
            for block in pool.imap(_worker_features, jobs):  # imap keeps the order: results equal the loop's
                yield from torch.from_numpy(block)


_WORKER: GradientFeaturizer | None = None


def _worker_start(model: nn.Module, config: FeatureConfig, resolution: int) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = GradientFeaturizer(model, config, resolution)


def _worker_features(job: tuple[np.ndarray, np.ndarray | None]) -> np.ndarray:
    worker = _WORKER
    if worker is None:
        raise RuntimeError("the worker's featurizer is made by its pool initializer")
    images, conds = job
    x, c = torch.from_numpy(images), None if conds is None else torch.from_numpy(conds)
    return torch.stack([worker(x[i], None if c is None else c[i]) for i in range(x.shape[0])]).numpy()


def unit_normalise(phi):
    """Rows (or one vector) scaled to unit length; works on numpy arrays and tensors alike."""
    if isinstance(phi, torch.Tensor):
        return F.normalize(phi, dim=-1)
    return phi / np.maximum(np.linalg.norm(phi, axis=-1, keepdims=True), 1e-12)


class ContributorAccumulator:
    """Streams per-image features into Phi^T Phi and per-contributor sums; nothing per image is kept."""

    def __init__(self, dim: int, n_contributors: int):
        self.gram = torch.zeros(dim, dim, dtype=torch.float64)
        self.sums = torch.zeros(dim, n_contributors, dtype=torch.float64)
        self.count = 0

    def add(self, phi: torch.Tensor, contributor: int) -> None:
        p = phi.double()
        self.gram.addr_(p, p)
        self.sums[:, contributor] += p
        self.count += 1

    def add_many(self, phis: torch.Tensor, contributors: torch.Tensor) -> None:
        """Rows of features with their contributor indices: one matrix product instead of a rank-1 update each."""
        p = phis.double()
        self.gram.addmm_(p.T, p)
        self.sums.index_add_(1, contributors.long(), p.T)
        self.count += p.shape[0]

    def solve(self, lambda_rel: float) -> np.ndarray:
        return contributor_vectors_from(self.gram, self.sums, lambda_rel)


def contributor_vectors_from(gram: torch.Tensor, sums: torch.Tensor, lambda_rel: float) -> np.ndarray:
    """(Phi^T Phi + lambda I)^-1 S with lambda relative to the mean diagonal (features have no natural scale)."""
    lam = lambda_rel * gram.diagonal().mean().clamp_min(1e-12)
    a = gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype)
    return torch.linalg.solve(a, sums).float().numpy()


def contributor_vectors(
    phi: np.ndarray, labels: np.ndarray, n_contributors: int, lambda_rel: float
) -> np.ndarray:
    p = torch.as_tensor(phi, dtype=torch.float64)
    sums = torch.zeros(p.shape[1], n_contributors, dtype=torch.float64)
    sums.index_add_(1, torch.as_tensor(labels), p.T)
    return contributor_vectors_from(p.T @ p, sums, lambda_rel)


# --- shares ----------------------------------------------------------------------------------------------


def shares_from_scores(scores: np.ndarray, labels: list[str], *, top_k: int = 5) -> dict[str, float]:
    """Positive part, normalised to sum to 1; the top_k contributors by name, the rest summed as "others".

    If no contributor has a positive score, the influence is spread evenly (no contributor can be singled out)."""
    pos = np.maximum(np.asarray(scores, dtype=np.float64), 0.0)
    total = pos.sum()
    pos = pos / total if total > 0 else np.full(len(pos), 1.0 / max(1, len(pos)))
    order = np.argsort(-pos, kind="stable")
    shares = {labels[i]: float(pos[i]) for i in order[:top_k] if pos[i] > 0}
    rest = 1.0 - sum(shares.values())
    if rest > 1e-12:
        shares["others"] = float(rest)
    return _renormalise(shares)


def _renormalise(shares: dict[str, float]) -> dict[str, float]:
    total = sum(shares.values())
    return {k: v / total for k, v in shares.items()}


def softmax_shares(
    scores: np.ndarray, labels: list[str], *, temperature: float, top_k: int = 5
) -> dict[str, float]:
    """Similarity scores are all positive cosines: a softmax separates them where max(., 0) would not."""
    s = np.asarray(scores, dtype=np.float64) / temperature
    p = np.exp(s - s.max())
    return shares_from_scores(p / p.sum(), labels, top_k=top_k)


# --- style similarity baseline -------------------------------------------------------------------------------


class GramFeaturizer(nn.Module):
    """Gram statistics of a fixed random conv net (seeded): style, not influence."""

    def __init__(self, seed: int = 7):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        convs = [nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1, stride=2)]
        self.convs = nn.ModuleList(convs)
        for conv in convs:
            with torch.no_grad():
                conv.weight.copy_(
                    torch.randn(conv.weight.shape, generator=g) / np.sqrt(conv.weight[0].numel())
                )
                if conv.bias is not None:
                    conv.bias.zero_()

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats, h = [], images
        for conv in self.convs:
            h = F.relu(conv(h))
            f = h.flatten(2)
            gram = f @ f.transpose(1, 2) / f.shape[-1]
            iu = torch.triu_indices(gram.shape[1], gram.shape[1])
            feats.append(gram[:, iu[0], iu[1]])
        return F.normalize(torch.cat(feats, dim=1), dim=1)


def similarity_scores(
    query: np.ndarray, train: np.ndarray, labels: np.ndarray, n_contrib: int, top_k: int
) -> np.ndarray:
    """Per query row and contributor: the mean of the top_k cosine similarities to that contributor's works."""
    sims = query @ train.T
    out = np.zeros((query.shape[0], n_contrib), dtype=np.float32)
    for c in range(n_contrib):
        block = np.sort(sims[:, labels == c], axis=1)[:, ::-1]
        out[:, c] = block[:, : max(1, min(top_k, block.shape[1]))].mean(axis=1) if block.shape[1] else 0.0
    return out
