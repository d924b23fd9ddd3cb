"""Embeddings of fixed parts of every indexed work: how a crop of a work finds the work.

A whole-image embedding of a crop lies far from its original's: a crop keeping half of a drawing's width and
height shows a quarter of it, at a different scale and layout. Keypoints rescue crops only where the drawing has
corners; a flat-coloured icon, a flag or a smooth gradient has almost none. Copy-detection systems therefore embed
crops on the reference side too: each work here also gets the embeddings of its four corner parts and its centre
part (70 % of each side) and of its middle (50 %). A query crop then meets a part that shows about what it shows.
On the copy benchmark's missed crops, a part of the true work was closer to the query than the query's tenth
neighbour for 44 of 47 (docs/search.md).

The part vectors live in an embedding space of their own, derived from the model's (same model, same dimension,
its own id), so shards, exact or IVF search by size, incremental add and query-time exclusions come from
embeddings.search.index unchanged; one work owns several vectors there, all under its asset id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embeddings.encoders.space import EmbeddingSpace

if TYPE_CHECKING:
    from PIL import Image

# (fraction of each side, positions): change PARTS_VERSION whenever these change, so indexing recomputes them
PARTS = ((0.7, ("top left", "top right", "bottom left", "bottom right", "centre")), (0.5, ("centre",)))
PARTS_VERSION = "parts-v1"
PER_WORK = sum(len(positions) for _, positions in PARTS)


def parts_space(space: EmbeddingSpace) -> EmbeddingSpace:
    """The space holding the part vectors of `space`'s model."""
    return EmbeddingSpace(model=space.model, pretrained=f"{space.pretrained}#{PARTS_VERSION}", dim=space.dim)


def _box(width: int, height: int, fraction: float, position: str) -> tuple[int, int, int, int]:
    w, h = max(1, round(width * fraction)), max(1, round(height * fraction))
    left = {"left": 0, "right": width - w}.get(position.split()[-1], (width - w) // 2)
    top = {"top": 0, "bottom": height - h}.get(position.split()[0], (height - h) // 2)
    return left, top, left + w, top + h


def work_parts(image: Image.Image) -> list[Image.Image]:
    """The PER_WORK parts of a work, in PARTS order."""
    return [
        image.crop(_box(image.width, image.height, fraction, position))
        for fraction, positions in PARTS
        for position in positions
    ]
