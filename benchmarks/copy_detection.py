"""Copy detection on the indexed openclipart collection: recall@1 / recall@10 per transform family for the full
search cascade, "embedding only" (the same model's one query embedding, kNN over whole works) and pHash-only
(nearest Hamming distance), side by side.

    DJANGO_SETTINGS_MODULE=config.settings.dev python benchmarks/copy_detection.py --works 1000 --seed N

Needs the collection ingested and indexed (`manage.py index --collection openclipart`). Every query is the
transformed picture re-encoded as a file (JPEG q85 unless the family says otherwise) and decoded again, as an
upload would be.

Which works are queries (`--pool`): `all` (the default) draws a fixed random sample from every indexed work, without
looking at any model, and a hit counts when the returned asset is in the true work's near-copy cluster: the work,
its identical files (same sha256, or same pHash and PDQ: openclipart ships some works twice under different
names), and what the product itself groups with it as copies (clusters.near_copy_ids: pHash radius or embedding
cosine >= PROVENANT_NEAR_COPY_COSINE, what opting the work out removes with it). openclipart has sets of variants
of one drawing (the same button in six colours, numbered star series) between which even a perfect detector cannot
choose. The table also gives the cascade's recall of the work itself or an identical file ("own work").
`distinct` is the development protocol of earlier rounds: queries only from works with no other work within the
pHash radius and no near-copy, so the pool depended on the model being scored.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

from tests import composites  # noqa: E402  (the composite makers the region tests use)

FAMILIES = [
    "downscale",
    "jpeg20",
    "crop",
    "mirror",
    "rotate",
    "grayscale",
    "colour",
    "overlay",
    "border",
    "canvas",
    "combo",
]
# Edits the issue does not name, run with `--families extra`: a detector tuned to the named families should not
# collapse on a quarter turn, an upside-down copy or a stretched one.
EXTRA_FAMILIES = [
    "rotate90",
    "flip",
    "stretch",
    "blur",
    "noise",
    "brightness",
    "perspective",
    "upscale",
    "posterize",
    "invert",
    "sepia",
    "screenshot",
]
# The work shown small (20-50 % of the width) inside a bigger picture, with other real pictures around it:
# `--families composite` (tests/composites.py draws them).
COMPOSITE_FAMILIES = list(composites.MAKERS)
ALL_FAMILIES = FAMILIES + EXTRA_FAMILIES + COMPOSITE_FAMILIES
SMALL_SIDE = 128  # openclipart ships many works only as 60-100 px icon renderings


def _jpeg(image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _crop(image, rng, low=0.5, high=0.8):
    w, h = image.size
    fw, fh = rng.uniform(low, high), rng.uniform(low, high)
    cw, ch = int(w * fw), int(h * fh)
    left, top = int(rng.uniform(0, w - cw)), int(rng.uniform(0, h - ch))
    return image.crop((left, top, left + cw, top + ch))


def _overlay(image, rng):
    from PIL import Image, ImageDraw, ImageFont

    base = image.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(14, base.height // 10)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:
        font = ImageFont.load_default()
    text = rng.choice(["© stock photos", "SAMPLE", "www.example.com", "watermark"])
    for row in range(3):
        y = int(base.height * (0.2 + 0.3 * row))
        draw.text((int(base.width * rng.uniform(0.05, 0.3)), y), text, fill=(80, 80, 80, 150), font=font)
    draw.rectangle((0, int(base.height * 0.88), base.width, base.height), fill=(20, 20, 20, 170))
    return Image.alpha_composite(base, layer).convert("RGB")


def transform(image, family: str, rng, others, pictures=()):
    """The edited copy and its JPEG quality; `pictures` are the other real pictures composites put beside it."""
    from PIL import Image, ImageEnhance, ImageOps

    if family in composites.MAKERS:
        return composites.MAKERS[family](image, rng, list(pictures))[0], 85
    w, h = image.size
    if family == "downscale":
        s = rng.uniform(0.2, 0.4)
        return image.resize((max(16, int(w * s)), max(16, int(h * s))), Image.Resampling.BILINEAR), 85
    if family == "jpeg20":
        return image, 20
    if family == "crop":
        return _crop(image, rng), 85
    if family == "mirror":
        return ImageOps.mirror(image), 85
    if family == "rotate":
        angle = rng.choice([-1, 1]) * rng.uniform(5, 15)
        return image.rotate(
            angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255)
        ), 85
    if family == "grayscale":
        return ImageOps.grayscale(image).convert("RGB"), 85
    if family == "colour":
        arr = np.asarray(image).astype(np.float32)
        gains = rng.uniform(0.6, 1.4, size=3)
        shifted = np.clip(arr[..., rng.permutation(3)] * gains, 0, 255).astype(np.uint8)
        return ImageEnhance.Contrast(Image.fromarray(shifted)).enhance(rng.uniform(0.7, 1.3)), 85
    if family == "overlay":
        return _overlay(image, rng), 85
    if family == "border":
        pad = int(max(w, h) * rng.uniform(0.1, 0.25))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        return ImageOps.expand(image, border=pad, fill=colour), 85
    if family == "canvas":
        canvas = Image.new(
            "RGB", (int(w * 2.2), int(h * 1.8)), tuple(int(c) for c in rng.integers(180, 255, 3))
        )
        other = others[int(rng.integers(len(others)))].resize((int(w * 0.9), int(h * 0.9)))
        canvas.paste(other, (int(w * 1.2), int(h * 0.8)))
        scale = rng.uniform(0.8, 1.0)
        canvas.paste(image.resize((int(w * scale), int(h * scale))), (int(w * 0.05), int(h * 0.05)))
        return canvas, 85
    if family == "combo":
        out = ImageOps.mirror(_crop(image, rng, 0.7, 0.9))
        out = out.resize((max(16, out.width // 2), max(16, out.height // 2)))
        return _overlay(out, rng), 40
    return _extra_transform(image, family, rng)


def _extra_transform(image, family: str, rng):
    from PIL import Image, ImageEnhance, ImageFilter, ImageOps

    w, h = image.size
    if family == "rotate90":
        return image.transpose(
            Image.Transpose.ROTATE_90 if rng.random() < 0.5 else Image.Transpose.ROTATE_270
        ), 85
    if family == "flip":
        return ImageOps.flip(image), 85
    if family == "stretch":
        factor = rng.uniform(1.25, 1.5)
        size = (int(w * factor), h) if rng.random() < 0.5 else (w, int(h * factor))
        return image.resize(size, Image.Resampling.BICUBIC), 85
    if family == "blur":
        return image.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 3.0) * max(w, h) / 512)), 85
    if family == "noise":
        noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(12, 20), (h, w, 3))
        return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), 85
    if family == "brightness":
        out = ImageEnhance.Brightness(image).enhance(
            rng.choice([rng.uniform(0.55, 0.75), rng.uniform(1.3, 1.6)])
        )
        return ImageEnhance.Color(out).enhance(rng.uniform(0.5, 1.5)), 85
    if family == "perspective":
        jitter = rng.uniform(-0.08, 0.08, 8) * np.array([w, h] * 4)
        corners = np.array([0, 0, 0, h, w, h, w, 0], dtype=np.float64) + jitter  # quad: NW, SW, SE, NE
        return image.transform(
            (w, h),
            Image.Transform.QUAD,
            corners.tolist(),
            Image.Resampling.BICUBIC,
            fillcolor=(255, 255, 255),
        ), 85
    if family == "upscale":  # an "HD" re-upload: a small copy blown up
        factor = rng.uniform(2.0, 3.0)
        return image.resize((int(w * factor), int(h * factor)), Image.Resampling.BICUBIC), 85
    if family == "posterize":  # a GIF: 16 colours, dithered
        return image.quantize(colors=16, dither=Image.Dither.FLOYDSTEINBERG).convert("RGB"), 85
    if family == "invert":
        return ImageOps.invert(image), 85
    if family == "sepia":
        grey = ImageOps.grayscale(image)
        return ImageOps.colorize(grey, black=(40, 26, 13), white=(255, 240, 192)), 85
    if family == "screenshot":  # the work shown in a window: title bar, side panel, scaled to fit
        scale = rng.uniform(0.6, 0.9)
        shot = Image.new("RGB", (int(w * 1.4) + 40, int(h * 1.25) + 60), (242, 242, 242))
        shot.paste((60, 60, 70), (0, 0, shot.width, 36))
        shot.paste((220, 225, 235), (0, 36, int(w * 0.35), shot.height))
        shot.paste(image.resize((int(w * scale), int(h * scale))), (int(w * 0.35) + 20, 50))
        return shot, 85
    raise ValueError(family)


class RecordingEncoder:
    """Wraps the encoder to keep the last query vectors: "embedding only" reuses the cascade's single-view embedding."""

    def __init__(self, encoder):
        self.inner, self.space, self.last = encoder, encoder.space, None

    def encode_images(self, images):
        self.last = self.inner.encode_images(images)
        return self.last

    def encode_texts(self, texts):
        return self.inner.encode_texts(texts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--works", type=int, default=500)
    parser.add_argument(
        "--families",
        default="issue",
        help="issue (the 11 families the issue names), extra (edits it does not name), composite (the work small "
        "inside a screenshot, grid, collage or mockup), all, or a comma list",
    )
    parser.add_argument(
        "--regions",
        choices=["on", "off"],
        default="on",
        help="search inside composites (PROVENANT_SEARCH_REGIONS)",
    )
    parser.add_argument("--collection", default="openclipart")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pool",
        choices=["all", "distinct"],
        default="all",
        help="all: a random sample of every indexed work, any member of its near-copy cluster correct; "
        "distinct: only works with no near-copy (the development protocol of earlier rounds)",
    )
    parser.add_argument("--distinct-radius", type=int, default=10)
    parser.add_argument("--part", default="0/1", help="i/n: run every n-th picked work starting at i")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on from the partial counts in --out (same seed, pool, families and part); calibration restarts",
    )
    parser.add_argument("--merge", nargs="*", help="JSON outputs of parts to add up and print (runs nothing)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "copy_detection.json"))
    args = parser.parse_args()
    if args.merge:
        return _merge(args)

    import django

    django.setup()
    import cv2
    import faiss
    import torch
    from django.conf import settings

    # every library's thread pool at --threads: two OpenMP threads on a core another job is using wait for
    # each other (one query embedding took 1.5 s instead of 20 ms with a second job running)
    settings.PROVENANT_TORCH_THREADS = (
        args.threads
    )  # the encoder sets torch's threads from this when it loads
    settings.PROVENANT_SEARCH_REGIONS = args.regions == "on"
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    from tqdm import tqdm

    import embeddings.encoders.factory as encoder_module
    from core import exclusions
    from embeddings.search import cascade as search
    from embeddings.search import clusters, index, stores
    from provenance import hashing
    from provenance.imaging import load_rgb, load_rgb_path
    from provenance.models import Asset

    exclusions._providers.clear()  # detection quality only: nothing hidden (and no opt-out tables needed)
    real = encoder_module.get_encoder()
    recorder = RecordingEncoder(real)
    search.get_encoder = lambda: recorder  # the cascade's encoder, recorded
    stored = set(index.stored_ids(real.space).tolist())
    rows = list(
        Asset.objects.filter(collection__name=args.collection, id__in=stored)
        .order_by("id")
        .values_list("id", "local_path", "sha256", "phash", "pdq")
    )
    if not rows:
        raise SystemExit(
            f"nothing indexed in {real.space.id}: run manage.py index --collection {args.collection}"
        )
    twins = defaultdict(set)
    for asset_id, _, sha, phash, pdq in rows:
        twins[("s", sha)].add(asset_id)
        twins[("p", phash, pdq)].add(asset_id)
    own_of = {r[0]: twins[("s", r[2])] | twins[("p", r[3], r[4])] for r in rows}
    table = stores.hash_table()
    if args.pool == "distinct":
        eligible = _distinct_works(rows, own_of, table, hashing, args.distinct_radius, clusters.near_copy_ids)
        print(
            f"{len(eligible)} of {len(rows)} indexed works have no other work within pHash distance "
            f"{args.distinct_radius} and no near-copy (variants of one drawing: colour sets, numbered series); "
            "queries come from those"
        )
    else:
        eligible = rows
        print(f"queries: a random sample of all {len(rows)} indexed works")
    rng = np.random.default_rng(args.seed)
    picked = [
        eligible[i] for i in rng.choice(len(eligible), size=min(args.works, len(eligible)), replace=False)
    ]
    part, parts = (int(x) for x in args.part.split("/"))
    picked = picked[part::parts]  # several processes can share the works; --merge adds their counts
    families = {
        "issue": FAMILIES,
        "extra": EXTRA_FAMILIES,
        "composite": COMPOSITE_FAMILIES,
        "all": ALL_FAMILIES,
    }.get(args.families, args.families.split(","))
    counts = {f: {m: [0, 0] for m in METHODS} for f in families}
    # cascade [queries, hits@10] per family for sources under SMALL_SIDE px (openclipart's icon renderings)
    small = {f: [0, 0] for f in families}
    seconds = defaultdict(list)
    others = [load_rgb_path(picked[i][1], max_side=512).image for i in range(3)]
    # neighbours in composites: the photographs plus works that are never queries (seeded like the queries)
    queried = set(picked)
    spare = [r for r in rows if r not in queried]
    pictures = composites.photographs() + [
        load_rgb_path(spare[int(i)][1], max_side=512).image
        for i in rng.choice(len(spare), size=min(12, len(spare)), replace=False)
    ]
    calibration: list[tuple[float, bool]] = []  # (cosine, true work?) of every embedding-tier hit in a top 10
    done, earlier_seconds = _resumed(args, families, counts, small, seconds) if args.resume else (0, 0.0)
    started = time.perf_counter() - earlier_seconds
    for n, (asset_id, path, *_rest) in enumerate(tqdm(picked, desc="works", unit="work")):
        if n < done:
            continue  # counted by the run this one resumes (every query is seeded by its work, not by order)
        original = load_rgb_path(path).image
        own = own_of[asset_id]
        truth = own.union(*(own_of.get(i, {i}) for i in clusters.near_copy_ids(asset_id)))
        is_small = max(original.size) < SMALL_SIDE
        for family in families:
            fam_rng = np.random.default_rng([args.seed, asset_id, ALL_FAMILIES.index(family)])
            image, quality = transform(original, family, fam_rng, others, pictures)
            data = _jpeg(image, quality)
            query = load_rgb(data).image
            t0 = time.perf_counter()
            hits = search.search_image(query, sha256="", top_k=10)
            seconds[family].append(time.perf_counter() - t0)
            ranked = [h.asset_id for h in hits]
            _count(counts[family]["cascade"], ranked, truth)
            _count(counts[family]["own work"], ranked, own)
            calibration += [(h.score, h.asset_id in truth) for h in hits if h.match == "embedding"]
            if is_small:
                small[family][0] += 1
                small[family][1] += bool(truth.intersection(h.asset_id for h in hits))
            _, knn = index.search_vectors(real.space, recorder.last[:1], 10)
            _count(counts[family]["embedding"], [int(i) for i in knn[0] if i >= 0], truth)
            distances = hashing.phash_distances(hashing.phash_int64(query), table.phash)
            order = np.argsort(np.where(table.has_phash, distances, 99), kind="stable")[:10]
            _count(counts[family]["phash"], [int(table.ids[i]) for i in order], truth)
        if (n + 1) % 10 == 0:
            _report(counts, small, seconds, n + 1, args, real.space.id, time.perf_counter() - started, True)
    _report(counts, small, seconds, len(picked), args, real.space.id, time.perf_counter() - started, False)
    print(_calibration_table(calibration))


METHODS = ("cascade", "own work", "embedding", "phash")
HEADINGS = {
    "cascade": "cascade",
    "own work": "cascade, own work",
    "embedding": "embedding only, same model",
    "phash": "pHash-only",
}


def _resumed(args, families: list[str], counts: dict, small: dict, seconds: dict) -> tuple[int, float]:
    """Loads the counts an interrupted run saved in --out into `counts`, `small` and `seconds`; (works done,
    seconds spent)."""
    out = Path(args.out)
    if not out.exists():
        return 0, 0.0
    saved = json.loads(out.read_text())
    ran = (saved.get("pool"), saved.get("seed"), saved.get("part", args.part), list(saved["counts"]))
    if ran != (args.pool, args.seed, args.part, families):
        raise SystemExit(f"{out} is another run's (pool, seed, part or families differ): nothing to resume")
    if not saved["partial"]:
        raise SystemExit(f"{out} is a finished run")
    counts.update(saved["counts"])
    small.update(saved["small"])
    seconds.update(saved["query_seconds"])
    print(f"resuming after {saved['works']} works")
    return saved["works"], saved["seconds"]


def _calibration_table(calibration: list[tuple[float, bool]]) -> str:
    """How often an embedding-tier hit at or above each cosine is the true work: where "this is your work"
    may start (PROVENANT_SEARCH_CONFIDENT_COSINE)."""
    lines = ["", "| embedding cosine >= | hits | true work | precision |", "|---|---|---|---|"]
    for threshold in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        above = [true for score, true in calibration if score >= threshold]
        if above:
            lines.append(f"| {threshold} | {len(above)} | {sum(above)} | {sum(above) / len(above):.3f} |")
    return "\n".join(lines)


def _merge(args) -> None:
    loaded = [json.loads(Path(p).read_text()) for p in args.merge]
    counts = loaded[0]["counts"]
    small = loaded[0]["small"]
    seconds = {family: [] for family in counts}
    for other in loaded[1:]:
        for family, per in other["counts"].items():
            for method, (r1, r10) in per.items():
                counts[family][method][0] += r1
                counts[family][method][1] += r10
            small[family][0] += other["small"][family][0]
            small[family][1] += other["small"][family][1]
    for one in loaded:
        for family, values in one.get("query_seconds", {}).items():
            seconds[family] += values
    works = sum(one["works"] for one in loaded)
    elapsed = max(one["seconds"] for one in loaded)
    _report(counts, small, seconds, works, args, loaded[0]["space"], elapsed, partial=False)


def _distinct_works(rows, truth_of, table, hashing, radius: int, near_copy_ids) -> list:
    """Works with one right answer: no *other* work (besides identical files) within the pHash radius, and none
    that the product itself calls a near-copy of it (clusters.near_copy_ids: pHash radius or embedding cosine >=
    PROVENANT_NEAR_COPY_COSINE, what an opt-out of the work removes with it). Line-art series pass the pHash test
    (their bits are unstable) while their members are the same drawing to every stage: 1,375 star polygons."""
    position = {int(asset_id): i for i, asset_id in enumerate(table.ids)}
    out = []
    for row in rows:
        distances = hashing.phash_distances(int(table.phash[position[row[0]]]), table.phash)
        close = {int(table.ids[i]) for i in np.flatnonzero((distances <= radius) & table.has_phash)}
        if close <= truth_of[row[0]] and set(near_copy_ids(row[0])) <= truth_of[row[0]]:
            out.append(row)
    return out


def _count(counter: list[int], ranked: list[int], truth: set[int]) -> None:
    if ranked[:1] and ranked[0] in truth:
        counter[0] += 1
    if truth.intersection(ranked[:10]):
        counter[1] += 1


def _size_table(counts, small, works: int) -> list[str]:
    """Cascade recall@10 split by the source's size: where the misses are."""
    n_small = max(q for q, _ in small.values())
    if not n_small or n_small == works:
        return []
    lines = [
        "",
        f"cascade R@10 by source size: {n_small} sources under {SMALL_SIDE} px, {works - n_small} larger",
        f"| family | under {SMALL_SIDE} px | larger |",
        "|---|---|---|",
    ]
    for family, (queries, found) in small.items():
        larger = (counts[family]["cascade"][1] - found) / (works - queries)
        lines.append(f"| {family} | {found / queries:.3f} | {larger:.3f} |")
    return lines


def _report(counts, small, seconds, works: int, args, space_id: str, elapsed: float, partial: bool) -> None:
    methods = [m for m in METHODS if m in next(iter(counts.values()))]
    lines = [
        f"copy detection: {works} works x {len(counts)} families, space {space_id}, {elapsed:.0f} s"
        + (" (partial)" if partial else ""),
        "| family | "
        + " | ".join(f"{HEADINGS[m]} R@{k}" for m in methods for k in (1, 10))
        + " | cascade ms/query (median) |",
        "|---" * (2 * len(methods) + 2) + "|",
    ]
    totals = {m: [0, 0] for m in methods}
    for family, per in counts.items():
        cells = []
        for method in methods:
            r1, r10 = per[method]
            totals[method][0] += r1
            totals[method][1] += r10
            cells += [f"{r1 / works:.3f}", f"{r10 / works:.3f}"]
        lines.append(f"| {family} | " + " | ".join(cells) + f" | {1000 * np.median(seconds[family]):.0f} |")
    n = works * len(counts)
    cells = [f"{totals[m][i] / n:.3f}" for m in methods for i in (0, 1)]
    all_seconds = [s for v in seconds.values() for s in v]
    lines.append("| **all** | " + " | ".join(cells) + f" | {1000 * np.median(all_seconds):.0f} |")
    lines += _size_table(counts, small, works)
    text = "\n".join(lines)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text + "\n")
    out.write_text(
        json.dumps(
            {
                "works": works,
                "pool": getattr(args, "pool", None),
                "seed": getattr(args, "seed", None),
                "part": getattr(args, "part", None),
                "space": space_id,
                "counts": counts,
                "seconds": elapsed,
                "partial": partial,
                "query_seconds": seconds,
                "small": small,
            },
            indent=1,
        )
    )
    if not partial:
        print(text)


if __name__ == "__main__":
    main()
