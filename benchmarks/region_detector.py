"""The region detector alone, without an index: how often one of its boxes holds the pasted work, per composite
family, and what it costs per query.

    python benchmarks/region_detector.py --per-family 20 --seed 0

Works are openclipart renderings drawn at random (seeded) from /usr/share/openclipart/png; neighbours are the
photographs shipped in installed packages plus other works, as in benchmarks/copy_detection.py. Each composite is
re-encoded as JPEG q85 and decoded again, as an upload would be. A box holds the work as
composites.holds_work says (a crop a search can find the work in).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import composites  # noqa: E402

ROOT = Path("/usr/share/openclipart/png")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-family", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--limit", type=int, default=4, help="regions per query (PROVENANT_SEARCH_REGION_MAX)"
    )
    parser.add_argument("--families", default=",".join(composites.MAKERS))
    parser.add_argument("--misses", help="folder to write missed composites with their boxes drawn")
    args = parser.parse_args()
    from PIL import ImageDraw

    from embeddings.search.regions import find_regions
    from provenance.imaging import load_rgb, load_rgb_path

    paths = sorted(ROOT.rglob("*.png"))
    rng = np.random.default_rng(args.seed)
    chosen = [paths[int(i)] for i in rng.choice(len(paths), size=args.per_family + 12, replace=False)]
    works, spare = chosen[: args.per_family], chosen[args.per_family :]
    pictures = composites.photographs() + [load_rgb_path(p, max_side=512).image for p in spare]
    print(
        f"load {os.getloadavg()[0]:.2f}; {args.per_family} works per family, seed {args.seed}, cap {args.limit}"
    )
    print("| family | holds the work | regions (mean) | detector ms (median) | ms (max) |")
    print("|---|---|---|---|---|")
    for family in args.families.split(","):
        found, counts, seconds = 0, [], []
        for n, path in enumerate(works):
            work = load_rgb_path(path).image
            fam_rng = np.random.default_rng([args.seed, n, list(composites.MAKERS).index(family)])
            picture, truth = composites.MAKERS[family](work, fam_rng, pictures)
            buffer = io.BytesIO()
            picture.convert("RGB").save(buffer, format="JPEG", quality=85)
            query = load_rgb(buffer.getvalue()).image
            factor = query.width / picture.width  # uploads are decoded at most 1024 px long
            drawing = tuple(round(v * factor) for v in composites.drawing_box(work, truth, family))
            truth = tuple(round(v * factor) for v in truth)
            started = time.perf_counter()
            boxes = [r.box for r in find_regions(query, limit=args.limit)]
            seconds.append(time.perf_counter() - started)
            counts.append(len(boxes))
            hit = any(composites.holds_work(b, truth, drawing) for b in boxes)
            found += hit
            if args.misses and not hit:
                drawn = query.copy()
                draw = ImageDraw.Draw(drawn)
                draw.rectangle(truth, outline=(0, 255, 0), width=4)
                draw.rectangle(drawing, outline=(0, 0, 255), width=2)
                for b in boxes:
                    draw.rectangle(b, outline=(255, 0, 0), width=3)
                Path(args.misses).mkdir(parents=True, exist_ok=True)
                drawn.save(Path(args.misses) / f"{family}-{n}.jpg")
        print(
            f"| {family} | {found}/{len(works)} | {np.mean(counts):.1f} | {1000 * np.median(seconds):.0f} "
            f"| {1000 * max(seconds):.0f} |"
        )
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
