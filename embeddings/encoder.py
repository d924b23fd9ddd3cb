"""The encoder interface every search, index and generator call goes through.

`get_encoder()` returns the configured encoder, built lazily on first use and cached per process, so the web
process never imports torch or open_clip unless a request needs an embedding. `CLIP_MODEL=fake` selects a
deterministic, dependency-free encoder for fast unit tests.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


@dataclass(frozen=True)
class EmbeddingSpace:
    """Identifies a vector space: vectors of different spaces are never mixed in one index."""

    model: str
    pretrained: str  # a pretrained tag, or the sha256 of a local weights file
    dim: int

    @property
    def id(self) -> str:
        blob = json.dumps([self.model, self.pretrained, self.dim]).encode()
        return f"{self.model}-{self.dim}-{hashlib.sha256(blob).hexdigest()[:12]}"


class Encoder(Protocol):
    space: EmbeddingSpace

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """float32 array (n, dim), rows L2-normalised."""

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """float32 array (n, dim), rows L2-normalised, in the same space as the images."""


@functools.cache
def get_encoder() -> Encoder:
    from django.conf import settings

    if settings.CLIP_MODEL == "fake":
        from embeddings.fake_encoder import FakeEncoder

        return FakeEncoder()
    from embeddings.openclip_encoder import OpenClipEncoder

    return OpenClipEncoder(model_name=settings.CLIP_MODEL, pretrained=settings.CLIP_PRETRAINED)
