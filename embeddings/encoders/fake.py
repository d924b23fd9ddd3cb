"""A deterministic, numpy-only encoder for unit tests (`CLIP_MODEL=fake`).

Images: a fixed random projection of a 16x16 grayscale thumbnail plus a 4x4 colour thumbnail, mean-centred, so a
resized or re-encoded copy lands near its original and unrelated pictures do not. Texts: the sum of fixed random
vectors of hashed tokens, so equal words give equal vectors. Text and image vectors share the space only nominally:
text-to-image similarity from this encoder is meaningless, which is fine for plumbing tests.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from PIL import Image

from embeddings.encoders.space import EmbeddingSpace

FAKE_DIM = 64
_GRAY_SIDE = 16
_COLOUR_SIDE = 4
_FEATURES = _GRAY_SIDE * _GRAY_SIDE + _COLOUR_SIDE * _COLOUR_SIDE * 3


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


class FakeEncoder:
    space = EmbeddingSpace(model="fake", pretrained="random-projection-seed-0", dim=FAKE_DIM)

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self._projection = rng.standard_normal((_FEATURES, FAKE_DIM)).astype(np.float32)

    def _features(self, image: Image.Image) -> np.ndarray:
        rgb = image.convert("RGB")
        gray = np.asarray(rgb.convert("L").resize((_GRAY_SIDE, _GRAY_SIDE), Image.Resampling.BILINEAR))
        colour = np.asarray(rgb.resize((_COLOUR_SIDE, _COLOUR_SIDE), Image.Resampling.BILINEAR))
        features = np.concatenate([gray.ravel(), colour.ravel()]).astype(np.float32) / 255.0
        return features - features.mean()

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, FAKE_DIM), dtype=np.float32)
        features = np.stack([self._features(image) for image in images])
        return _normalise(features @ self._projection)

    def _token_vector(self, token: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(FAKE_DIM).astype(np.float32)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            tokens = re.findall(r"\w+", text.casefold()) or [""]
            rows.append(np.sum([self._token_vector(token) for token in tokens], axis=0))
        if not rows:
            return np.zeros((0, FAKE_DIM), dtype=np.float32)
        return _normalise(np.stack(rows))
