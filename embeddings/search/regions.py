"""The separate pictures inside a query: where a work shown small in a screenshot, a grid, a collage or a product
mockup sits, so that each one can be searched as if it had been the query.

A cheap detector, all in numpy and OpenCV on a copy at most ANALYSIS_SIDE pixels long (a few milliseconds):

1. The ground: everything reached from the query's edge by a flood fill that steps between neighbouring pixels of
   about the same colour: page, window and chat backgrounds, title bars and side panels touching the edge, grid
   gutters, a blurred or noisy table top. A flood stops at a sharp step, which is where a pasted picture begins.
2. Content: what the ground leaves, less long straight seams a few pixels thin (where a wall meets a floor, rules),
   as connected components whose boxes are merged when they nearly touch (the strokes of one line drawing). Text is content too, but its boxes are lines: a box whose rows are more than
   TEXT_EMPTY_ROWS empty, in several runs, is a paragraph, not a picture; one thinner than MIN_SIDE is a line.
3. A box that holds several pictures side by side is cut into them: at every band of rows, then of columns,
   that is ground from side to side (a mood board's gutters, narrower than the gap that joins one drawing's
   strokes), each cell trimmed to its content; or, where no gutter runs across it (cells touching, or a gutter
   lost at this scale), once along a row or column that is one long straight edge (XY-cut).
4. Inside each of the largest pictures found, the same again once, kept when it finds exactly one smaller picture:
   a print on a T-shirt, a picture inside a chat bubble (several are the parts of one drawing). A very large box
   with no such picture inside (prints overlapping in a collage, white on white) is searched in four overlapping
   quarters instead.

Boxes covering most of the query, or almost all of a box they sit in, add nothing and are dropped; the largest
`limit` are kept (the cost of region search grows with each: every region goes through the whole cascade).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

ANALYSIS_SIDE = 384
FLOOD_RANGE = 20  # colour difference (0-255, per channel) from its seed that a flood of ground takes in
FLOOD_STEP = 4  # ... or between neighbours, that it steps across
MIN_SIDE = 0.1  # of the query's shorter side: smaller boxes are icons, text lines, buttons
MAX_AREA = 0.7  # of the query's area: a larger box is the query itself
TEXT_EMPTY_ROWS = 0.3
MERGE_GAP = 0.012  # of the longer side: boxes this close are one picture
TEXT_HEIGHT = 0.025  # of the longer side: letters of body text and headings are smaller
INNER_SEARCHED = 4  # the largest boxes searched for a picture inside them
TILED_AREA = (
    0.2  # of the query's area: a box this large with no single picture inside is searched in quarters
)
TILE = 0.6  # of the box's side
LINE_LENGTH = 0.15  # of the query's side: a straight run of content at least this long ...
LINE_THICKNESS = 4  # ... and thinner than this (pixels at ANALYSIS_SIDE) is a seam or a rule, not a picture
GUTTER_GROUND = 0.97  # share of a line across a box that is ground, for the line to be a gutter between cells


@dataclass(frozen=True)
class Region:
    box: tuple[int, int, int, int]  # in the query's pixels
    where: str  # "at the top left, 34 % of the query's width"


def find_regions(image: Image.Image, *, limit: int = 6) -> list[Region]:
    """Up to `limit` boxes of separate pictures in the query, largest first; none for a single picture."""
    from PIL import Image as PILImage

    scale = min(1.0, ANALYSIS_SIDE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = np.asarray(image.convert("RGB").resize(size, PILImage.Resampling.BOX), dtype=np.uint8)
    height, width = small.shape[:2]
    boxes = _pictures(small, (0, 0, width, height))
    # the same again inside the largest few only: each look inside costs as much as the first
    large = [
        box
        for box in _distinct(boxes, width * height)[:INNER_SEARCHED]
        if _area(box) >= 0.06 * width * height
    ]
    nested = [inner for box in large for inner in _single_inner(small, box) or _tiles(box, width * height)]
    kept = _distinct(boxes + nested, width * height)[:limit]
    return [_region(box, 1 / scale, image.size) for box in kept]


def _single_inner(pixels: np.ndarray, box: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """The one picture inside a picture (a print on a T-shirt, a photo in a chat bubble) when there is exactly
    one and it is clearly smaller: several are the parts of one drawing, not pictures of their own."""
    inner = [b for b in _pictures(pixels, box) if _inside(b, box) < 0.8]
    return inner if len(inner) == 1 else []


def _tiles(box: tuple[int, int, int, int], total: int) -> list[tuple[int, int, int, int]]:
    """Four overlapping quarters of a large box the detector could not take apart (prints laid over each other
    in a collage, white on white, have no edge between them): a work at a third of the box fills most of one."""
    if _area(box) < TILED_AREA * total:
        return []
    x0, y0, x1, y1 = box
    w, h = round(TILE * (x1 - x0)), round(TILE * (y1 - y0))
    return [(x, y, x + w, y + h) for x in (x0, x1 - w) for y in (y0, y1 - h)]


def _pictures(pixels: np.ndarray, frame: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """Picture boxes within `frame` (absolute coordinates in `pixels`)."""
    x0, y0, x1, y1 = frame
    crop = pixels[y0:y1, x0:x1]
    if min(crop.shape[:2]) < 24:
        return []
    ground = _ground(crop)
    content = _without_text(_without_thin_lines(~ground), TEXT_HEIGHT * max(pixels.shape[:2]))
    gap = round(MERGE_GAP * max(crop.shape[:2]))
    boxes = _merge(_component_boxes(content, gap), 0) + _quadrilaterals(crop, content)
    short = min(pixels.shape[:2])
    found = []
    for box in boxes:
        # a box a gutter runs across is several pictures, not one
        for piece in set(_gutter_cells(ground, content, box, MIN_SIDE * short)) or {box, *_cut(crop, box)}:
            if min(piece[2] - piece[0], piece[3] - piece[1]) >= MIN_SIDE * short and not _is_text(
                content, piece
            ):
                found.append((piece[0] + x0, piece[1] + y0, piece[2] + x0, piece[3] + y0))
    return found


def _ground(pixels: np.ndarray) -> np.ndarray:
    """Boolean mask of the ground: flood fills from seeds along the whole edge, each taking in pixels within
    FLOOD_RANGE of its seed's colour (flat grounds, bars, gutters) or stepping between neighbours that differ by
    less than FLOOD_STEP (grain and gradients; a smaller step, which the soft outline of a picture does not pass)."""
    import cv2

    # smoothed first: grain, noise or a JPEG's ringing in a textured ground would stop the flood at every pixel
    image = np.ascontiguousarray(cv2.GaussianBlur(pixels, (0, 0), 1.0))
    height, width = pixels.shape[:2]
    seeds = [(x, y) for x in range(0, width, 6) for y in (0, height - 1)]
    seeds += [(x, y) for y in range(0, height, 6) for x in (0, width - 1)]
    ground = np.zeros((height, width), bool)
    for tolerance, mode in ((FLOOD_RANGE, cv2.FLOODFILL_FIXED_RANGE), (FLOOD_STEP, 0)):
        mask = np.zeros((height + 2, width + 2), np.uint8)
        for x, y in seeds:
            if not mask[y + 1, x + 1]:
                step = (tolerance,) * 3
                cv2.floodFill(
                    image, mask, (x, y), 0, step, step, 4 | cv2.FLOODFILL_MASK_ONLY | mode | (1 << 8)
                )
        ground |= mask[1:-1, 1:-1].astype(bool)
    return ground


def _without_thin_lines(content: np.ndarray) -> np.ndarray:
    """The content without long straight lines a few pixels thick: the seam where a wall meets a floor, a rule
    or a table border, which the ground's floods leave between them and which would join every picture they
    touch into one box as wide as the query."""
    import cv2

    mask = content.astype(np.uint8)
    thin = np.zeros_like(mask)
    for length, across in ((mask.shape[1], (LINE_THICKNESS, 1)), (mask.shape[0], (1, LINE_THICKNESS))):
        along = (
            (1, max(3, int(LINE_LENGTH * length)))
            if across[1] == 1
            else (max(3, int(LINE_LENGTH * length)), 1)
        )
        lines = np.asarray(cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones(along, np.uint8)), dtype=np.uint8)
        thick = np.asarray(cv2.morphologyEx(lines, cv2.MORPH_OPEN, np.ones(across, np.uint8)), dtype=np.uint8)
        thin |= lines & ~thick
    return content & ~thin.astype(bool)


def _without_text(content: np.ndarray, height: float) -> np.ndarray:
    """The content without components no taller than a line of text (letters, words, lines, rules): text
    merged with a picture beside it would make its box a paragraph's."""
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(content.astype(np.uint8), connectivity=8)
    small = stats[:, cv2.CC_STAT_HEIGHT] <= height
    small[0] = True
    return ~small[labels]


def _quadrilaterals(pixels: np.ndarray, content: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes of four-sided outlines among the edges: photographs and prints laid over each other in a collage,
    a frame on a wall, which touch and so form one component of content. An outline around mostly ground (a
    page's header line meeting its side panel) is layout, not a picture."""
    import cv2

    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    edges = cv2.dilate(cv2.Canny(grey, 60, 160), np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    short = min(pixels.shape[:2])
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if min(w, h) < MIN_SIDE * short * 1.5:
            continue
        outline = cv2.approxPolyDP(contour, 0.03 * cv2.arcLength(contour, True), True)
        if (
            len(outline) == 4
            and cv2.isContourConvex(outline)
            and cv2.contourArea(outline) > 0.8 * w * h * 0.7
        ):
            boxes.append((x, y, x + w, y + h))
    return boxes


def _component_boxes(content: np.ndarray, gap: int) -> list[list[int]]:
    """Boxes of the content's connected components once dilated by `gap`: strokes that nearly touch join."""
    import cv2

    joined = cv2.dilate(content.astype(np.uint8), np.ones((2 * gap + 1, 2 * gap + 1), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    height, width = content.shape
    return [
        [max(0, x + gap), max(0, y + gap), min(width, x + w - gap), min(height, y + h - gap)]
        for x, y, w, h, _ in stats[1:count]
        if w > 2 * gap + 1 and h > 2 * gap + 1
    ]


def _merge(boxes: list[list[int]], gap: float) -> list[tuple[int, int, int, int]]:
    """Union boxes that overlap or lie within `gap` of each other, until none do."""
    boxes = [list(b) for b in boxes]
    merged = True
    while merged:
        merged = False
        out: list[list[int]] = []
        for box in sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True):
            for other in out:
                if (
                    box[0] <= other[2] + gap
                    and other[0] <= box[2] + gap
                    and box[1] <= other[3] + gap
                    and other[1] <= box[3] + gap
                ):
                    other[:] = [
                        min(box[0], other[0]),
                        min(box[1], other[1]),
                        max(box[2], other[2]),
                        max(box[3], other[3]),
                    ]
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    return [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in boxes]


def _cut(pixels: np.ndarray, box: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """The box, cut once along each row or column that is flat across it or one straight edge across it."""
    x0, y0, x1, y1 = box
    crop = pixels[y0:y1, x0:x1].max(axis=2).astype(np.int16)
    if min(crop.shape[:2]) < 48:
        return [box]
    xs = _cut_lines(crop, axis=0)
    ys = _cut_lines(crop, axis=1)
    if not xs and not ys:
        return [box]
    xs, ys = [0, *xs, x1 - x0], [0, *ys, y1 - y0]
    return [
        (x0 + xs[i], y0 + ys[j], x0 + xs[i + 1], y0 + ys[j + 1])
        for i in range(len(xs) - 1)
        for j in range(len(ys) - 1)
    ]


def _gutter_cells(
    ground: np.ndarray, content: np.ndarray, box: tuple[int, int, int, int], side: float
) -> list[tuple[int, int, int, int]]:
    """The pictures of a board: the box split at every band of rows that is ground from side to side, then each
    band at every band of columns that is, each cell trimmed to its content (a cell of text alone has none). A
    mood board's gutters are narrower than the gap that joins the strokes of one drawing, so its cells come out
    of the components as one box; a white cell on a white board has no edge for _cut to follow, but its gutters
    are ground all the way across. Empty for a box without a gutter."""
    x0, y0, x1, y1 = box
    cells = []
    for top, bottom in _between_gutters(ground[y0:y1, x0:x1].mean(axis=1), side):
        for left, right in _between_gutters(ground[y0 + top : y0 + bottom, x0:x1].mean(axis=0), side):
            inked = _content_box(content, (x0 + left, y0 + top, x0 + right, y0 + bottom))
            if inked is not None:
                cells.append(inked)
    return cells if len(cells) > 1 else []


def _content_box(content: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    """The box trimmed to the content inside it; None when it holds none."""
    x0, y0, x1, y1 = box
    inside = content[y0:y1, x0:x1]
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if not len(rows):
        return None
    return (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)


def _between_gutters(ground_share: np.ndarray, side: float) -> list[tuple[int, int]]:
    """[start, end) of each run of lines that are not (almost) all ground, `side` long at least."""
    gutter = ground_share >= GUTTER_GROUND
    edges = np.flatnonzero(np.diff(np.concatenate(([True], gutter, [True])).astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= side]


def _cut_lines(crop: np.ndarray, *, axis: int) -> list[int]:
    """Positions along the other axis (columns for axis=0) where one straight edge runs across at least 80 % of
    the crop: the border between two pictures that touch."""
    along = crop.shape[1 - axis]
    step = np.abs(np.diff(crop, axis=1 - axis))
    edge = np.zeros(along, bool)
    edge[1:] = (step > 40).mean(axis=axis) > 0.8
    seam = edge
    margin = int(0.15 * along)
    lines: list[int] = []
    for position in np.flatnonzero(seam[margin : along - margin]) + margin:
        if not lines or position - lines[-1] > margin:
            lines.append(int(position))
    return lines


def _is_text(content: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """A paragraph: many rows of its box hold no content at all, in several separate runs (between lines)."""
    rows = content[box[1] : box[3], box[0] : box[2]].any(axis=1)
    empty = ~rows
    runs = int(np.count_nonzero(np.diff(empty.astype(np.int8)) == 1))
    return empty.mean() > TEXT_EMPTY_ROWS and runs >= 3


def _inside(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> float:
    """The share of `outer` that `inner` covers (1 when they are the same box)."""
    return _area(inner) / max(1, _area(outer))


def _area(box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _iou(a, b) -> float:
    overlap = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    return overlap / max(1, _area(a) + _area(b) - overlap)


def _distinct(boxes: list[tuple[int, int, int, int]], total: int) -> list[tuple[int, int, int, int]]:
    kept: list[tuple[int, int, int, int]] = []
    for box in sorted(boxes, key=_area, reverse=True):
        if _area(box) <= MAX_AREA * total and all(_iou(box, other) < 0.8 for other in kept):
            kept.append(box)
    return kept


def _region(box, factor: float, size: tuple[int, int]) -> Region:
    left, top, right, bottom = (round(v * factor) for v in box)
    right, bottom = min(right, size[0]), min(bottom, size[1])
    cx, cy = (left + right) / 2 / size[0], (top + bottom) / 2 / size[1]
    vertical = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    horizontal = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    place = "centre" if (vertical, horizontal) == ("middle", "centre") else f"{vertical} {horizontal}"
    share = round(100 * (right - left) / size[0])
    return Region((left, top, right, bottom), f"at the {place}, {share} % of the query's width")
