"""The open_clip encoder: any open_clip model by pretrained tag or local weights file, or the offline default.

Nothing heavy happens at construction: the weights are located, checked and loaded on first use, once per
process. Weights that are missing offline raise `WeightsMissing` (an ApplicationError) saying what to run or
download and where to put it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.exceptions import ApplicationError
from embeddings.encoders import default_model as dm
from embeddings.encoders.space import EmbeddingSpace

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors", ".ckpt")


class WeightsMissing(ApplicationError):
    """The configured model cannot be loaded on this machine; the message says how to fix it."""

    status_code = 503


def _setting(name: str, default: Any) -> Any:
    from django.conf import settings

    return getattr(settings, name, default)


def _open_clip():
    """open_clip imports torchvision, which needs the shim first beside the CPU torch."""
    from embeddings.encoders.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import open_clip

    return open_clip


def _looks_like_path(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.endswith(WEIGHT_SUFFIXES) or Path(pretrained).exists()


class OpenClipEncoder:
    def __init__(
        self,
        model_name: str,
        pretrained: str = "",
        *,
        models_dir: str | Path | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
    ):
        self.model_name = model_name
        self.pretrained = (pretrained or "").strip()
        self.models_dir = models_dir
        self.threads = threads
        self.batch_size = batch_size or _setting("PROVENANT_ENCODE_BATCH", 64)
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Callable, Callable] | None = None
        self._fast_image_tower: Callable[[np.ndarray], np.ndarray] | None = None  # the tower in ONNX Runtime

    # --- where the weights are -------------------------------------------------------------------------------

    @property
    def is_default_model(self) -> bool:
        return self.model_name == dm.MODEL_NAME

    @cached_property
    def weights_file(self) -> Path | None:
        """The local weights file, or None when `pretrained` is an open_clip tag. Raises WeightsMissing."""
        if self.is_default_model and not self.pretrained:
            path = dm.checkpoint_path(self.models_dir)
            if not path.is_file():
                raise WeightsMissing(
                    f"The default model {dm.MODEL_NAME} has not been built on this machine (no {path}). "
                    "Run `python manage.py build_default_model` after ingesting a collection (a few minutes on "
                    "CPU, everything offline), or set CLIP_MODEL and CLIP_PRETRAINED=/path/to/weights for another "
                    "open_clip model.",
                    extra={"expected_path": str(path), "fix": "python manage.py build_default_model"},
                )
            return path
        if not self.pretrained:
            raise WeightsMissing(
                f"CLIP_MODEL={self.model_name} needs CLIP_PRETRAINED: an open_clip pretrained tag or the path of "
                "a local weights file."
            )
        if _looks_like_path(self.pretrained):
            path = Path(self.pretrained).expanduser()
            if not path.is_file():
                raise WeightsMissing(
                    f"CLIP_PRETRAINED={self.pretrained}: no such weights file. Put the open_clip weights file for "
                    f"{self.model_name} at that path (or point CLIP_PRETRAINED at it)"
                    + (", or run `python manage.py build_default_model`." if self.is_default_model else "."),
                    extra={"expected_path": str(path)},
                )
            return path
        return None

    def _check_tag(self) -> dict[str, Any]:
        open_clip = _open_clip()
        if open_clip.get_model_config(self.model_name) is None:
            raise WeightsMissing(f"CLIP_MODEL={self.model_name} is not an open_clip model name.")
        cfg = open_clip.get_pretrained_cfg(self.model_name, self.pretrained)
        if not cfg:
            tags = open_clip.list_pretrained_tags_by_model(self.model_name)
            raise WeightsMissing(
                f"CLIP_PRETRAINED={self.pretrained} is neither a weights file nor a pretrained tag of "
                f"{self.model_name} (tags: {', '.join(tags) or 'none'})."
            )
        return cfg

    def _tag_missing(self, cfg: dict[str, Any], exc: Exception) -> WeightsMissing:
        source = (
            f"https://huggingface.co/{cfg['hf_hub'].rstrip('/')}" if cfg.get("hf_hub") else cfg.get("url", "")
        )
        target = (
            Path(_setting("PROVENANT_MODELS_DIR", "var/models")) / f"{self.model_name}-{self.pretrained}.bin"
        )
        return WeightsMissing(
            f"The weights of {self.model_name} / {self.pretrained} are not in the local cache and could not be "
            f"downloaded ({type(exc).__name__}). On a machine with internet, download them from {source} "
            f"(open_clip_pytorch_model.bin or open_clip_model.safetensors), copy the file to {target} and set "
            f"CLIP_PRETRAINED={target}. Or use the offline default: CLIP_MODEL={dm.MODEL_NAME}, CLIP_PRETRAINED "
            "empty, after `python manage.py build_default_model`.",
            extra={"download": source, "expected_path": str(target)},
        )

    @cached_property
    def space(self) -> EmbeddingSpace:
        path = self.weights_file
        if path is None:
            open_clip = _open_clip()
            self._check_tag()
            dim = open_clip.get_model_config(self.model_name)["embed_dim"]
            return EmbeddingSpace(model=self.model_name, pretrained=self.pretrained, dim=int(dim))
        return EmbeddingSpace(
            model=self.model_name, pretrained=dm.file_sha256(path), dim=self._file_dim(path)
        )

    def _file_dim(self, path: Path) -> int:
        if self.is_default_model:
            saved = path.parent / f"{dm.MODEL_NAME}.json"
            if saved.exists():
                import json

                return int(json.loads(saved.read_text())["embed_dim"])
            return dm.DEFAULT_EMBED_DIM
        cfg = _open_clip().get_model_config(self.model_name)
        if cfg is None:
            raise WeightsMissing(f"CLIP_MODEL={self.model_name} is not an open_clip model name.")
        return int(cfg["embed_dim"])

    # --- loading ---------------------------------------------------------------------------------------------

    def _create(self):
        open_clip = _open_clip()
        import torch

        torch.set_num_threads(self.threads or _setting("PROVENANT_TORCH_THREADS", 2))
        path = self.weights_file
        if self.is_default_model and path is not None:  # the default model always has a weights file
            dm.set_offline_env()
            import transformers

            transformers.logging.set_verbosity_error()
            beside = path.parent / f"{dm.MODEL_NAME}.json"
            dm.register_model_config(path.parent if beside.exists() else dm.model_dir(self.models_dir))
            model, _, preprocess = open_clip.create_model_and_transforms(
                dm.MODEL_NAME, pretrained=str(path), **dm.preprocess_kwargs()
            )
        elif path is not None:
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.model_name, pretrained=str(path)
            )
        else:
            cfg = self._check_tag()
            try:
                model, _, preprocess = open_clip.create_model_and_transforms(self.model_name, self.pretrained)
            except Exception as exc:  # offline: huggingface_hub / urllib raise many types
                raise self._tag_missing(cfg, exc) from exc
        model.eval()
        if self.is_default_model:
            dm.use_channels_last(model)
            dm.fold_batch_norms(model)
        return model, preprocess, open_clip.get_tokenizer(self.model_name)

    def _get(self) -> tuple[Any, Callable, Callable]:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    model, preprocess, tokenizer = self._create()
                    if _setting("PROVENANT_IMAGE_RUNTIME", "onnx") == "onnx":
                        self._fast_image_tower = self._onnx_image_tower(model, preprocess)
                    self._loaded = (model, preprocess, tokenizer)
        return self._loaded

    def _onnx_image_tower(self, model, preprocess: Callable) -> Callable[[np.ndarray], np.ndarray] | None:
        import numpy as np
        from PIL import Image

        from embeddings.encoders import onnx_tower

        shape = tuple(preprocess(Image.new("RGB", (64, 64))).shape)
        probe = np.random.default_rng(0).standard_normal((2, *shape), dtype=np.float32)
        return onnx_tower.image_tower(
            model.visual,
            probe,
            folder=self.onnx_folder,
            name=self.onnx_name,
            threads=self.threads or _setting("PROVENANT_TORCH_THREADS", 2),
        )

    @property
    def onnx_folder(self) -> Path:
        return Path(self.models_dir or _setting("PROVENANT_MODELS_DIR", "var/models")) / "onnx"

    @property
    def onnx_name(self) -> str:
        """The embedding space's id: the model, its weights and its dimension."""
        return self.space.id

    @property
    def preprocess(self) -> Callable:
        return self._get()[1]

    # --- encoding --------------------------------------------------------------------------------------------

    def _run(self, fn: Callable, inputs) -> np.ndarray:
        import numpy as np
        import torch

        with torch.inference_mode():
            out = fn(inputs, normalize=True).float()
        return np.ascontiguousarray(out.numpy(), dtype=np.float32)

    def _empty(self) -> np.ndarray:
        import numpy as np

        return np.zeros((0, self.space.dim), dtype=np.float32)

    def encode_pixels(self, pixels) -> np.ndarray:
        """Preprocessed (n, 3, H, W) tensor -> float32 (n, dim), L2-normalised."""
        import torch

        model = self._get()[0]
        if self._fast_image_tower is not None:
            return _unit_rows(self._fast_image_tower(pixels.numpy()))
        return self._run(model.encode_image, pixels.contiguous(memory_format=torch.channels_last))

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        import numpy as np
        import torch

        if not images:
            return self._empty()
        _, preprocess, _ = self._get()
        chunks = []
        for start in range(0, len(images), self.batch_size):
            pixels = torch.stack(
                [preprocess(im.convert("RGB")) for im in images[start : start + self.batch_size]]
            )
            chunks.append(self.encode_pixels(pixels))
        return np.concatenate(chunks)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return self._empty()
        model, _, tokenizer = self._get()
        chunks = [
            self._run(model.encode_text, tokenizer(texts[start : start + self.batch_size]))
            for start in range(0, len(texts), self.batch_size)
        ]
        return np.concatenate(chunks)

    def encode_paths(
        self,
        paths: Sequence[str],
        *,
        workers: int = 2,
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> tuple[list[int], np.ndarray, list[tuple[int, str]]]:
        """Decode files in `workers` processes (through provenance.imaging) while this one encodes.

        Returns (positions of the encoded paths, their float32 vectors in that order, [(position, reason)] for
        files that could not be decoded). `on_batch(n)` is called with the number of files done, for progress.
        """
        import numpy as np

        from embeddings.encoders.batch_decode import iter_pixel_batches

        done: list[int] = []
        chunks: list[np.ndarray] = []
        failed: list[tuple[int, str]] = []
        batches = iter_pixel_batches(
            paths, self.preprocess, batch_size=batch_size or self.batch_size, workers=workers
        )
        for batch in batches:
            failed += batch.failed
            if batch.pixels is not None:
                chunks.append(self.encode_pixels(batch.pixels))
                done += batch.indices
            if on_batch:
                on_batch(len(batch.indices) + len(batch.failed))
        return done, (np.concatenate(chunks) if chunks else self._empty()), failed


def _unit_rows(features: np.ndarray) -> np.ndarray:
    """Each row at unit length, as open_clip's `normalize=True` does (F.normalize, eps 1e-12)."""
    import numpy as np

    norms = np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(features / norms, dtype=np.float32)
