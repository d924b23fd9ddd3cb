"""Grey 16x16 thumbnails: a perceptual fingerprint for the copies that break pHash on sparse line art.

pHash keeps one bit per low-frequency DCT coefficient (above or below their median). On a mostly white drawing
of thin lines those coefficients sit close to the median and JPEG noise flips them: a quality-20 copy of a 100 px
star polygon lies 24 of 64 bits from its original, far outside any usable radius. The thumbnail keeps the
values: the cosine of two mean-centred 16x16 grey thumbnails is their normalised cross-correlation, which stays
near 1 under re-encoding, downscaling, greyscale and colour shifts and falls for other pictures, even for the
other members of a series of similar icons (docs/search.md has the figures).

The vectors are indexed in FAISS as an embedding space of their own, so shards, exact or IVF search by size, and
query-time exclusions come from embeddings.search.index unchanged; the space does not depend on the CLIP model, so a new
model does not recompute it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from embeddings.encoders.space import EmbeddingSpace

if TYPE_CHECKING:
    from PIL import Image

SIDE = 16  # 32 separates near-identical icons a little better but loses 20 px downscaled copies
SPACE = EmbeddingSpace(model="thumbnail-grey", pretrained=f"box{SIDE}-centred-v1", dim=SIDE * SIDE)


def thumbnail_vector(image: Image.Image) -> np.ndarray:
    """float32 (SIDE*SIDE,): box-filtered grey thumbnail, mean removed, unit length (zeros for a flat image)."""
    from PIL import Image as PILImage

    grey = image.convert("L").resize((SIDE, SIDE), PILImage.Resampling.BOX)
    vector = np.asarray(grey, dtype=np.float32).ravel()
    vector -= vector.mean()
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 1e-6 else vector


# The eight ways to turn or flip a square: the thumbnail of a turned or flipped picture is the thumbnail turned or
# flipped (the box filter squashes every picture to the same square), so a copy's orientation costs no image work.
ORIENTATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "": lambda a: a,
    " (mirrored)": np.fliplr,
    " (upside down)": np.flipud,
    " (turned 180°)": lambda a: np.rot90(a, 2),
    " (turned 90°)": lambda a: np.rot90(a, 1),
    " (turned 270°)": lambda a: np.rot90(a, 3),
    " (transposed)": np.transpose,
    " (anti-transposed)": lambda a: np.rot90(a, 2).T,
}


UPRIGHT = ("", " (mirrored)")  # a mirrored copy is as common as a resized one; the other turns are not


def oriented_vectors(vector: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The thumbnail a copy would have if it were turned, flipped or a negative (the negated vector, since the
    vector is mean-centred): what to search to find the original of such a copy."""
    square = vector.reshape(SIDE, SIDE)
    turned = [(label, np.ascontiguousarray(turn(square)).ravel()) for label, turn in ORIENTATIONS.items()]
    return turned + [(f"{label} (inverted)", -v) for label, v in turned]


def thumbnail_vectors(images: list[Image.Image]) -> np.ndarray:
    if not images:
        return np.zeros((0, SPACE.dim), dtype=np.float32)
    return np.stack([thumbnail_vector(image) for image in images])
