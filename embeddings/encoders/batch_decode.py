"""Decode and preprocess image files in worker processes while the main process runs the model.

Decoding (PNG inflate, SVG rendering) costs about as much CPU as a small image tower, so overlapping the two is
most of the indexing speed-up. Every file goes through `provenance.imaging.load_rgb_path` (bomb guard, SVG
without network); a file it rejects is reported, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DECODE_MAX_SIDE = 512  # the towers see 224 px: decoding larger only costs time


@dataclass
class PixelBatch:
    indices: list[int]  # positions in the input sequence of the rows of `pixels`
    pixels: torch.Tensor | None
    failed: list[tuple[int, str]] = field(default_factory=list)


class _DecodeItems:
    """A map-style dataset (DataLoader needs only __len__ and __getitem__), picklable for worker processes."""

    def __init__(self, paths: Sequence[str], preprocess: Callable, max_side: int):
        self.paths = list(paths)
        self.preprocess = preprocess
        self.max_side = max_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from provenance.imaging import ImageRejected, load_rgb_path

        try:
            image = load_rgb_path(self.paths[index], max_side=self.max_side).image
            return index, self.preprocess(image), ""
        except (ImageRejected, OSError) as exc:
            return index, None, str(exc) or type(exc).__name__


def _collate(items) -> PixelBatch:
    import torch

    ok = [(i, t) for i, t, _ in items if t is not None]
    failed = [(i, reason) for i, t, reason in items if t is None]
    pixels = torch.stack([t for _, t in ok]) if ok else None
    return PixelBatch([i for i, _ in ok], pixels, failed)


def iter_pixel_batches(
    paths: Sequence[str],
    preprocess: Callable,
    *,
    batch_size: int = 64,
    workers: int = 2,
    max_side: int = DECODE_MAX_SIDE,
) -> Iterator[PixelBatch]:
    """Batches in input order; `workers=0` decodes in this process (no fork)."""
    from torch.utils.data import DataLoader

    loader: DataLoader = DataLoader(
        _DecodeItems(paths, preprocess, max_side),  # type: ignore[arg-type]  # any map-style object serves
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    yield from loader
