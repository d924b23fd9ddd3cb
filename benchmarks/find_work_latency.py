"""An image search end to end at 100k (or more) works, through the path `manage.py find_work` and the API run:
decode, the cascade's own query views and regions, encoding, kNN over the whole-work, part and thumbnail indexes,
keypoint candidates and geometric verification, and the hits' metadata through the ORM. Stage times are reported
beside p50 / p95 of the whole.

    createdb provenant_latency   # a scratch PostgreSQL database (the script migrates it)
    DJANGO_SETTINGS_MODULE=config.settings.dev python benchmarks/find_work_latency.py --works 100000 \\
        --database-url postgres://provenant:provenant@127.0.0.1:5432/provenant_latency

The configured collection (the environment's database and index, e.g. the demo's) is the real part; it needs its
whole-work, part and thumbnail vectors and keypoint features (`manage.py index`). The rest of the works are padding
made from it, so that they look like real works to every stage:
- whole-work vectors: the real works' part embeddings (each an embedding of a crop of a real work: an augmented real
  work, from the distribution real images make, not random normals), each used at most twice, the second time with
  a little noise; a padding work's part vectors and thumbnail are those of the real work it was made from, the
  parts with a little noise, the thumbnail turned or flipped;
- keypoint features: the real work's, linked (no copy), so verification reads and matches as many keypoints, and
  the keypoint index holds every work's descriptors;
- database rows: a copy of the real work's row (title, credit, URL) under a new id, with its pHash and PDQ bits
  partly flipped, so the hash stage scans every row as it would.
Queries are copies of real works made by the copy-detection benchmark's edits (the issue's 11 families in turn),
JPEG-encoded as an upload is; the search runs at the product's default settings (regions on).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

ROW_FIELDS = (
    "id", "source", "key", "url", "domain", "local_path", "width", "height", "format", "title", "caption",
    "licence", "creator_raw", "phash", "pdq", "pdq_quality", "contributor__display_name",
)  # fmt: skip


def export_real(out: Path) -> None:
    """The configured collection's indexed works: rows, vectors of every space, the features folder (a child
    process under the caller's own settings, before the scratch database and index take over)."""
    import django

    django.setup()
    from embeddings.encoders.factory import get_encoder
    from embeddings.search import geometry, index, parts, thumbnails
    from provenance.models import Asset

    space = get_encoder().space
    arrays = {}
    for name, each in (("whole", space), ("parts", parts.parts_space(space)), ("thumbs", thumbnails.SPACE)):
        arrays[f"{name}_ids"], arrays[f"{name}_vectors"] = index.load_vectors(each)
    with_parts = set(arrays["parts_ids"].tolist()) & set(arrays["thumbs_ids"].tolist())
    ids = [int(i) for i in arrays["whole_ids"] if int(i) in with_parts and geometry.has_features(int(i))]
    rows = list(Asset.objects.filter(id__in=ids).order_by("id").values(*ROW_FIELDS))
    if not rows:
        raise SystemExit("no work has whole, part and thumbnail vectors and features: run manage.py index")
    np.savez(out / "real.npz", **arrays)
    (out / "real.json").write_text(
        json.dumps({"space": space.id, "features": str(geometry.features_dir()), "rows": rows})
    )


def _noisy(vectors: np.ndarray, rng, scale: float) -> np.ndarray:
    out = vectors + rng.standard_normal(vectors.shape).astype(np.float32) * scale / np.sqrt(vectors.shape[1])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _by_owner(ids: np.ndarray, vectors: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(ids, kind="stable")
    ids, vectors = ids[order], vectors[order]
    bounds = np.flatnonzero(np.diff(ids)) + 1
    return {
        int(group_ids[0]): group
        for group_ids, group in zip(np.split(ids, bounds), np.split(vectors, bounds), strict=True)
    }


def build(works: int, scratch: Path, rng) -> list[dict]:
    """Rows, index shards and features of `works` works in the scratch database and index; the real rows."""
    from django.conf import settings

    from embeddings.encoders.factory import get_encoder
    from embeddings.search import geometry, index, keypoints, parts, thumbnails
    from provenance.models import Asset, Collection, Contributor

    meta = json.loads((scratch / "real.json").read_text())
    real = np.load(scratch / "real.npz")
    rows = meta["rows"]
    space = get_encoder().space
    if space.id != meta["space"]:
        raise SystemExit(f"the exported vectors are of {meta['space']}, the configured model is {space.id}")
    collection, _ = Collection.objects.get_or_create(name="latency")
    names = {r["contributor__display_name"] or r["creator_raw"] or "unknown" for r in rows}
    contributors = {
        name: Contributor.objects.get_or_create(name_key=name.casefold(), defaults={"display_name": name})[0]
        for name in names
    }
    whole, part_of, thumb_of = (
        _by_owner(real["whole_ids"], real["whole_vectors"]),
        _by_owner(real["parts_ids"], real["parts_vectors"]),
        _by_owner(real["thumbs_ids"], real["thumbs_vectors"]),
    )
    crops = np.concatenate([part_of[r["id"]] for r in rows])  # the augmented real works padding is made of
    features_from = Path(meta["features"])
    origin: dict[int, int] = {}
    turns = list(thumbnails.ORIENTATIONS.values())
    for start in range(0, works, 10_000):
        batch = [rows[i % len(rows)] for i in range(start, min(works, start + 10_000))]
        assets = [_asset(row, collection, contributors, rng, start + n) for n, row in enumerate(batch)]
        created = Asset.objects.bulk_create(assets, batch_size=2_000)  # PostgreSQL returns the new ids
        ids = np.array([a.id for a in created], dtype=np.int64)
        index.write_shard(space, ids, _whole_vectors(batch, start, whole, crops, rng))
        part_vectors = np.concatenate([_noisy(part_of[r["id"]], rng, 0.1) for r in batch])
        index.write_shard(parts.parts_space(space), np.repeat(ids, parts.PER_WORK), part_vectors)
        thumbs = np.stack(
            [
                turns[int(rng.integers(len(turns)))](
                    thumb_of[r["id"]][0].reshape(thumbnails.SIDE, -1)
                ).ravel()
                for r in batch
            ]
        )
        index.write_shard(thumbnails.SPACE, ids, thumbs.astype(np.float32))
        for asset_id, row in zip(ids, batch, strict=True):
            _link_features(features_from, row["id"], int(asset_id), geometry)
            origin[int(asset_id)] = row["id"]
        print(f"  {start + len(batch):,} works", flush=True)
    for each in (space, parts.parts_space(space), thumbnails.SPACE):
        index.publish_index(each, exact_max=settings.PROVENANT_INDEX_EXACT_MAX)
    keypoints.build(sorted(origin))
    (scratch / "origin.json").write_text(json.dumps(origin))
    return rows


def _asset(row: dict, collection, contributors: dict, rng, n: int):
    from provenance.models import Asset

    flip = int(rng.integers(1, 2**62)) & int(rng.integers(1, 2**62))  # about a quarter of the low 62 bits
    pdq = row["pdq"]
    if pdq:
        pdq_bits = bytearray(bytes.fromhex(pdq))
        for position in rng.choice(len(pdq_bits), size=8, replace=False):
            pdq_bits[position] ^= int(rng.integers(1, 256))
        pdq = pdq_bits.hex()
    return Asset(
        collection=collection,
        source=f"{row['source']}#{n}",
        key=f"{n:09d}",
        url=row["url"],
        domain=row["domain"],
        local_path=row["local_path"],
        sha256=f"{n:064x}",
        width=row["width"],
        height=row["height"],
        format=row["format"],
        title=row["title"],
        caption=row["caption"],
        licence=row["licence"],
        creator_raw=row["creator_raw"],
        contributor=contributors[row["contributor__display_name"] or row["creator_raw"] or "unknown"],
        phash=None if row["phash"] is None else row["phash"] ^ flip,
        pdq=pdq,
        pdq_quality=row["pdq_quality"],
    )


def _whole_vectors(sources: list[dict], start: int, whole: dict, crops: np.ndarray, rng) -> np.ndarray:
    """The real works' own vectors for the first copy of the collection, crops of real works after it."""
    out = np.empty((len(sources), crops.shape[1]), dtype=np.float32)
    for n, row in enumerate(sources):
        position = start + n
        if position < len(whole):
            out[n] = whole[row["id"]][0]
        else:
            crop = crops[(position - len(whole)) % len(crops)][None, :]
            out[n] = crop[0] if position - len(whole) < len(crops) else _noisy(crop, rng, 0.1)[0]
    return out


def _link_features(features_from: Path, real_id: int, asset_id: int, geometry) -> None:
    source = features_from / f"{real_id // 1000:06d}" / f"{real_id}.npz"
    target = geometry.features_dir() / f"{asset_id // 1000:06d}" / f"{asset_id}.npz"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.link(source, target)


class StageClock:
    """Seconds spent in each stage of the query in flight, by wrapping the functions the cascade calls."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def wrap(self, owner, name: str, stage: str) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.spent[stage] += time.perf_counter() - t0

        setattr(owner, name, timed)


def instrument() -> StageClock:
    """Stages that do not nest: what is left of a search's time is decoding, hashes, clusters and ranking."""
    from embeddings.search import cascade, index

    clock = StageClock()
    encoder = cascade.get_encoder()
    clock.wrap(encoder, "encode_images", "encode (every view and region)")
    cascade.get_encoder = lambda: encoder
    clock.wrap(index, "search_vectors", "kNN (whole, parts, thumbnails, clusters)")
    clock.wrap(cascade, "_geometric_hits", "geometric (query ORB, keypoint candidates, RANSAC)")
    clock.wrap(cascade, "_region_queries", "region detection")
    return clock


def queries(rows: list[dict], count: int, rng) -> list[tuple[str, int, bytes]]:
    from copy_detection import FAMILIES, transform

    from provenance.imaging import load_rgb_path

    picked = rng.choice(len(rows), size=count, replace=False)
    pictures = [load_rgb_path(rows[int(i)]["local_path"], max_side=512).image for i in picked[:3]]
    out = []
    for n, i in enumerate(picked):
        family = FAMILIES[n % len(FAMILIES)]
        image, quality = transform(load_rgb_path(rows[int(i)]["local_path"]).image, family, rng, pictures)
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
        out.append((family, rows[int(i)]["id"], buffer.getvalue()))
    return out


def measure(
    queries_: list[tuple[str, int, bytes]], clock: StageClock, origin: dict[str, int]
) -> tuple[list[float], dict[str, list[float]], float]:
    """Seconds per search, per stage, and how often the work (or a padding copy of it) is in the top 10: a check
    that the path timed is the one that finds works."""
    from embeddings.search.cascade import search_image_bytes
    from embeddings.selectors import hit_rows

    totals, stages, found = [], defaultdict(list), 0
    for _, real_id, data in queries_:
        clock.spent.clear()
        t0 = time.perf_counter()
        searched = search_image_bytes(data, top_k=10)
        t1 = time.perf_counter()
        rows = hit_rows(searched)
        t2 = time.perf_counter()
        found += any(origin.get(str(row["asset_id"])) == real_id for row in rows)
        totals.append(t2 - t0)
        stages["metadata (ORM)"].append(t2 - t1)
        for stage, seconds in clock.spent.items():
            stages[stage].append(seconds)
        timed = sum(clock.spent.values())
        stages["other (decode, hashes, ranking)"].append(t1 - t0 - timed)
    return totals, stages, found / len(queries_)


def _ms(samples: list[float]) -> str:
    return f"{np.percentile(samples, 50) * 1000:.0f} / {np.percentile(samples, 95) * 1000:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--works", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=110)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database-url", required=True, help="a scratch database (its tables are written)")
    parser.add_argument("--scratch", default=str(ROOT / "var" / "benchmarks" / "find-work-latency"))
    parser.add_argument("--reuse", action="store_true", help="time the collection the last run built")
    parser.add_argument("--export-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "find_work_latency.json"))
    args = parser.parse_args()
    scratch = Path(args.scratch)
    if args.export_only:
        return export_real(scratch)
    if not args.reuse:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        subprocess.run([sys.executable, __file__, "--export-only", "--scratch", str(scratch),
                        "--database-url", args.database_url], check=True)  # fmt: skip
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["PROVENANT_INDEX_DIR"] = str(scratch / "index")
    import django

    django.setup()
    from django.conf import settings

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    if args.reuse:
        rows = json.loads((scratch / "real.json").read_text())["rows"]
    else:
        from django.core.management import call_command

        from provenance.models import Asset

        call_command("migrate", verbosity=0)
        if Asset.objects.exists():
            raise SystemExit(f"{args.database_url} holds works already: give a scratch database")
        rows = build(args.works, scratch, rng)
    built_s = time.perf_counter() - t0
    load_before = os.getloadavg()
    clock = instrument()
    made = queries(rows, args.queries + 5, rng)
    origin = json.loads((scratch / "origin.json").read_text())
    measure(made[:5], clock, origin)  # first loads (indexes, hash table, model) are not queries
    totals, stages, found = measure(made[5:], clock, origin)
    load_after = os.getloadavg()
    lines = [
        f"find_work path at {args.works:,} works ({len(rows):,} real, the rest padding), {len(totals)} queries, "
        f"{settings.PROVENANT_TORCH_THREADS} torch threads (OpenCV and FAISS: their defaults); "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        f"built in {built_s:.0f} s; the work (or a padding copy of it) in the top 10 for {found:.0%}",
        "| stage | ms p50 / p95 |",
        "|---|---|",
        f"| **whole search (upload to rows)** | **{_ms(totals)}** |",
    ] + [f"| {stage} | {_ms(samples)} |" for stage, samples in sorted(stages.items())]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text + "\n")
    out.write_text(
        json.dumps(
            {
                "works": args.works,
                "real": len(rows),
                "torch_threads": settings.PROVENANT_TORCH_THREADS,
                "load": [load_before[0], load_after[0]],
                "total_s": totals,
                "stages_s": stages,
                "found_at_10": found,
                "families": [family for family, _, _ in made[5:]],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
