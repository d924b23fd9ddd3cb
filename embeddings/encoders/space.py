"""The encoder interface every search, index and generator call goes through, and the space its vectors live in.

The implementations (embeddings.encoders.fake, embeddings.encoders.openclip) import this module; the factory that
picks one (embeddings.encoders.factory) imports them, so nothing here imports an implementation.
"""

from __future__ import annotations

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
    @property
    def space(self) -> EmbeddingSpace: ...  # read-only: an implementation may compute it

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """float32 array (n, dim), rows L2-normalised."""

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """float32 array (n, dim), rows L2-normalised, in the same space as the images."""
