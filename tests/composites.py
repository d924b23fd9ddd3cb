"""Composite pictures that hold a work small among other content, as artists meet their work on the web: a
screenshot of a web page or of a chat, a grid or a free-form collage with other real pictures, a product mockup.

Each maker draws the composite with Pillow and pastes the work at 20-50 % of the composite's width, returning the
picture and the box the work occupies (for the region detector's own check). `others` are other real pictures
(photographs and other works), so neighbours are never only flat colour.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

Box = tuple[int, int, int, int]
WORDS = (
    "the artist shared new work today and it was quickly picked up by several accounts who reposted it "
    "without credit please share the original link below thanks for all the kind words on this piece "
    "available as print soon commissions open next month colours inspired by autumn light"
).split()
PHOTOS = (  # real photographs shipped inside installed packages: no download
    "sklearn/datasets/images/china.jpg",
    "sklearn/datasets/images/flower.jpg",
    "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
)


def photographs() -> list[Image.Image]:
    import sysconfig

    root = Path(sysconfig.get_paths()["purelib"])
    return [Image.open(root / path).convert("RGB") for path in PHOTOS if (root / path).exists()]


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _sentence(rng, n: int) -> str:
    return " ".join(rng.choice(WORDS, size=n))


def _fit(image: Image.Image, width: int) -> Image.Image:
    height = max(8, round(image.height * width / image.width))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    return ImageOps.fit(image, size, Image.Resampling.LANCZOS)


def _colour(rng, low: int = 0, high: int = 255) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(low, high, 3))


def _text_lines(draw, rng, x: int, y: int, width: int, bottom: int, size: int, fill) -> int:
    """Paragraph lines from y down to bottom; returns the y after the last line."""
    font = _font(size)
    while y + size < bottom:
        words = int(rng.integers(4, 12))
        line = _sentence(rng, words)
        while font.getlength(line) > width and " " in line:
            line = line.rsplit(" ", 1)[0]
        draw.text((x, y), line, fill=fill, font=font)
        y += int(size * 1.6)
    return y


def page(work: Image.Image, rng, others: list[Image.Image]) -> tuple[Image.Image, Box]:
    """A web page: header with navigation, a sidebar of other pictures, an article with text around the work."""
    width = int(rng.integers(1100, 1440))
    height = int(width * rng.uniform(0.6, 0.8))
    shot = Image.new(
        "RGB", (width, height), (255, 255, 255) if rng.random() < 0.7 else _colour(rng, 235, 255)
    )
    draw = ImageDraw.Draw(shot)
    bar = _colour(rng, 20, 120)
    draw.rectangle((0, 0, width, 64), fill=bar)
    draw.text((24, 18), "Pinboard · Gallery", fill=(255, 255, 255), font=_font(24))
    for n, label in enumerate(("Home", "Explore", "Shop", "About")):
        draw.text((width - 420 + 90 * n, 22), label, fill=(230, 230, 230), font=_font(18))
    side = int(width * 0.24)
    draw.rectangle((width - side, 64, width, height), fill=(244, 245, 248))
    y = 90
    for other in rng.permutation(len(others))[:2]:
        thumb = _cover(others[int(other)], (side - 40, int((side - 40) * 0.66)))
        shot.paste(thumb, (width - side + 20, y))
        draw.text(
            (width - side + 20, y + thumb.height + 6), _sentence(rng, 3), fill=(60, 60, 60), font=_font(14)
        )
        y += thumb.height + 40
    left = 40
    draw.text((left, 88), _sentence(rng, 5).capitalize(), fill=(20, 20, 20), font=_font(30))
    y = _text_lines(
        draw, rng, left, 140, width - side - 80, 140 + int(rng.integers(20, 120)), 16, (50, 50, 50)
    )
    piece = _fit(work, int(width * rng.uniform(0.2, 0.45)))
    piece = piece.crop((0, 0, piece.width, min(piece.height, height - y - 60)))
    x = left + int(rng.uniform(0, max(1, width - side - 80 - piece.width)))
    shot.paste(piece, (x, y + 10))
    box = (x, y + 10, x + piece.width, y + 10 + piece.height)
    caption_y = box[3] + 8
    draw.text((x, caption_y), _sentence(rng, 6), fill=(110, 110, 110), font=_font(14))
    _text_lines(draw, rng, left, caption_y + 30, width - side - 80, height - 10, 16, (50, 50, 50))
    return shot, box


def chat(work: Image.Image, rng, others: list[Image.Image]) -> tuple[Image.Image, Box]:
    """A chat app: a contact list, bubbles of text, the work sent as a picture message, another picture too."""
    width = int(rng.integers(1000, 1300))
    height = int(width * rng.uniform(0.65, 0.8))
    dark = rng.random() < 0.3
    shot = Image.new("RGB", (width, height), (30, 32, 38) if dark else (236, 229, 221))
    draw = ImageDraw.Draw(shot)
    ink = (230, 230, 230) if dark else (30, 30, 30)
    panel = int(width * 0.28)
    draw.rectangle((0, 0, panel, height), fill=(22, 24, 28) if dark else (255, 255, 255))
    for n in range(int(height / 72)):
        cy = 20 + 72 * n
        draw.ellipse((16, cy, 64, cy + 48), fill=_colour(rng, 60, 220))
        draw.text((76, cy + 4), _sentence(rng, 2).title(), fill=ink, font=_font(16))
        draw.text((76, cy + 26), _sentence(rng, 4), fill=(140, 140, 140), font=_font(13))
    draw.rectangle((panel, 0, width, 60), fill=(42, 46, 54) if dark else (240, 242, 245))
    draw.text((panel + 24, 18), _sentence(rng, 2).title(), fill=ink, font=_font(20))
    y, mine = 80, bool(rng.random() < 0.5)
    bubble_fill = ((40, 90, 70), (50, 54, 62)) if dark else ((220, 248, 198), (255, 255, 255))
    placed, box = False, (0, 0, 0, 0)
    while y < height - 60:
        mine = not mine
        fill = bubble_fill[0] if mine else bubble_fill[1]
        if not placed and (y > height * 0.3 or rng.random() < 0.3):
            piece = _fit(work, int(width * rng.uniform(0.2, 0.42)))
            piece = piece.crop((0, 0, piece.width, min(piece.height, height - y - 30)))
            x = width - piece.width - 40 if mine else panel + 40
            draw.rounded_rectangle((x - 6, y - 6, x + piece.width + 6, y + piece.height + 6), 12, fill=fill)
            shot.paste(piece, (x, y))
            box, placed = (x, y, x + piece.width, y + piece.height), True
            y += piece.height + 30
            continue
        if rng.random() < 0.15:
            other = _fit(others[int(rng.integers(len(others)))], int(width * 0.2))
            x = width - other.width - 40 if mine else panel + 40
            shot.paste(other.crop((0, 0, other.width, min(other.height, height - y - 10))), (x, y))
            y += other.height + 24
            continue
        text = _sentence(rng, int(rng.integers(3, 10)))
        span = int(_font(16).getlength(text)) + 28
        x = width - span - 40 if mine else panel + 40
        draw.rounded_rectangle((x, y, x + span, y + 40), 12, fill=fill)
        draw.text((x + 14, y + 10), text, fill=ink, font=_font(16))
        y += 56
    if not placed:
        return chat(work, rng, others)
    return shot, box


def grid(work: Image.Image, rng, others: list[Image.Image]) -> tuple[Image.Image, Box]:
    """A mood board: 2x2 to 3x3 cells with gutters, filled with other pictures; the work in one of them."""
    rows, cols = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    gutter = int(rng.integers(4, 24))
    cell = int(rng.integers(260, 400))
    background = (255, 255, 255) if rng.random() < 0.5 else _colour(rng, 0, 60)
    board = Image.new(
        "RGB", (cols * cell + (cols + 1) * gutter, rows * cell + (rows + 1) * gutter), background
    )
    target = int(rng.integers(rows * cols))
    box = (0, 0, 0, 0)
    for n in range(rows * cols):
        x, y = gutter + (n % cols) * (cell + gutter), gutter + (n // cols) * (cell + gutter)
        if n == target:
            piece = ImageOps.pad(work, (cell, cell), color=(255, 255, 255))
            board.paste(piece, (x, y))
            box = (x, y, x + cell, y + cell)
        else:
            board.paste(_cover(others[int(rng.integers(len(others)))], (cell, cell)), (x, y))
    return board, box


def collage(work: Image.Image, rng, others: list[Image.Image]) -> tuple[Image.Image, Box]:
    """A free-form collage on a textured ground: other pictures at angles, overlapping each other, and the work
    (a little turned, with a white print border) among them."""
    width = int(rng.integers(1000, 1400))
    height = int(width * rng.uniform(0.65, 0.85))
    noise = rng.normal(0, 18, (height // 8, width // 8, 3)) + np.array(_colour(rng, 120, 220))
    ground = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    ground = ground.filter(ImageFilter.GaussianBlur(2))
    for other in rng.permutation(len(others))[:4]:
        picture = _fit(others[int(other)], int(width * rng.uniform(0.22, 0.38)))
        _paste_print(
            ground, picture, rng, (int(rng.uniform(-0.1, 0.8) * width), int(rng.uniform(-0.1, 0.7) * height))
        )
    piece = _fit(work, int(width * rng.uniform(0.2, 0.4)))
    x = int(rng.uniform(0.02, 0.98) * (width - piece.width))
    y = int(rng.uniform(0.02, 0.98) * max(1, height - piece.height))
    box = _paste_print(ground, piece, rng, (x, y))
    return ground, box


def _paste_print(ground: Image.Image, picture: Image.Image, rng, at: tuple[int, int]) -> Box:
    """A print with a white border and a soft shadow, turned by up to 8 degrees; returns its box on the ground."""
    framed = ImageOps.expand(picture, border=max(4, picture.width // 30), fill=(250, 250, 250)).convert(
        "RGBA"
    )
    turned = framed.rotate(float(rng.uniform(-8, 8)), resample=Image.BICUBIC, expand=True)
    shadow = Image.new("RGBA", turned.size, (0, 0, 0, 0))
    shadow.putalpha(
        turned.getchannel("A").point(lambda a: 90 if a else 0).filter(ImageFilter.GaussianBlur(6))
    )
    ground.paste(shadow, (at[0] + 6, at[1] + 6), shadow)
    ground.paste(turned, at, turned)
    return (at[0], at[1], at[0] + turned.width, at[1] + turned.height)


def mockup(work: Image.Image, rng, others: list[Image.Image]) -> tuple[Image.Image, Box]:
    """A product mockup: the work printed on a T-shirt, framed on a wall, or on a tote bag, in a styled scene."""
    width = int(rng.integers(1000, 1300))
    height = int(width * rng.uniform(0.7, 0.9))
    kind = ("shirt", "frame", "tote")[int(rng.integers(3))]
    scene = Image.new("RGB", (width, height), _colour(rng, 150, 235))
    draw = ImageDraw.Draw(scene)
    # a floor, a plant pot and a second product (a framed photograph) so the scene is not only flat colour
    draw.rectangle((0, int(height * 0.82), width, height), fill=_colour(rng, 90, 170))
    photo = _cover(others[int(rng.integers(len(others)))], (int(width * 0.16), int(width * 0.2)))
    scene.paste(ImageOps.expand(photo, border=10, fill=(40, 30, 20)), (int(width * 0.05), int(height * 0.12)))
    cx, top = int(width * rng.uniform(0.45, 0.62)), int(height * 0.1)
    product = _colour(rng, 140, 255)  # a light product: a print on it keeps its colours
    if kind == "shirt":
        w = int(width * 0.46)
        body = [
            (cx - w // 2, top + 60),
            (cx - w // 2 - 90, top + 170),
            (cx - w // 2 - 30, top + 220),
            (cx - w // 2 + 10, top + 190),
            (cx - w // 2 + 10, int(height * 0.85)),
            (cx + w // 2 - 10, int(height * 0.85)),
            (cx + w // 2 - 10, top + 190),
            (cx + w // 2 + 30, top + 220),
            (cx + w // 2 + 90, top + 170),
            (cx + w // 2, top + 60),
            (cx + 70, top + 30),
            (cx - 70, top + 30),
        ]
        draw.polygon(body, fill=product, outline=tuple(max(0, c - 40) for c in product))
        area = (cx - w // 2 + 40, top + 130, cx + w // 2 - 40, int(height * 0.8))
    elif kind == "frame":
        w = int(width * rng.uniform(0.3, 0.45))
        draw.rectangle((cx - w // 2 - 24, top, cx + w // 2 + 24, int(height * 0.78)), fill=(35, 30, 25))
        draw.rectangle(
            (cx - w // 2 - 8, top + 16, cx + w // 2 + 8, int(height * 0.78) - 16), fill=(248, 248, 244)
        )
        area = (cx - w // 2, top + 24, cx + w // 2, int(height * 0.78) - 24)
    else:
        w = int(width * 0.4)
        draw.arc((cx - w // 4, top - 40, cx + w // 4, top + 140), 180, 360, fill=product, width=14)
        draw.rectangle((cx - w // 2, top + 60, cx + w // 2, int(height * 0.86)), fill=product)
        area = (cx - w // 2 + 30, top + 100, cx + w // 2 - 30, int(height * 0.82))
    side = min(area[2] - area[0], int(width * rng.uniform(0.2, 0.4)))
    scale = min(side / work.width, (area[3] - area[1]) / work.height)
    piece = work.resize(
        (max(8, round(work.width * scale)), max(8, round(work.height * scale))), Image.LANCZOS
    )
    x = area[0] + (area[2] - area[0] - piece.width) // 2
    y = area[1] + (area[3] - area[1] - piece.height) // 3
    # printed on fabric: the ink multiplies the product's colour, white stays the fabric
    fabric = Image.new("RGB", piece.size, product if kind != "frame" else (248, 248, 244))
    printed = Image.fromarray(
        (np.asarray(piece, np.float32) * np.asarray(fabric, np.float32) / 255).astype(np.uint8)
    )
    scene.paste(printed, (x, y))
    return scene.filter(ImageFilter.GaussianBlur(0.6)), (x, y, x + piece.width, y + piece.height)


def _shared(a, b) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _area(box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def holds_work(box, truth, drawing) -> bool:
    """Most of the drawing is in the box, and most of the box is the pasted work (its white margin included)."""
    return _shared(box, drawing) >= 0.7 * _area(drawing) and _shared(box, truth) >= 0.5 * _area(box)


def drawing_box(work, truth, family: str):
    """Where the work's drawing (without its own white margin) lies in the composite: makers paste it scaled to
    the box's width (page, chat, mockup; the bottom may be cut) or padded into a square cell (grid); a collage
    turns a bordered print, so there the whole box counts."""
    grey = np.asarray(work.convert("L"))
    rows, cols = np.flatnonzero((grey < 235).any(axis=1)), np.flatnonzero((grey < 235).any(axis=0))
    if family == "collage" or not len(rows):
        return truth
    width, height = truth[2] - truth[0], truth[3] - truth[1]
    scale = min(width / work.width, height / work.height) if family == "grid" else width / work.width
    dx = (width - work.width * scale) / 2 if family == "grid" else 0
    dy = (height - work.height * scale) / 2 if family == "grid" else 0
    box = (
        truth[0] + dx + cols[0] * scale,
        truth[1] + dy + rows[0] * scale,
        truth[0] + dx + (cols[-1] + 1) * scale,
        truth[1] + dy + (rows[-1] + 1) * scale,
    )
    return tuple(round(v) for v in (box[0], box[1], box[2], min(box[3], truth[3])))


MAKERS: dict[str, Callable] = {"page": page, "chat": chat, "grid": grid, "collage": collage, "mockup": mockup}
