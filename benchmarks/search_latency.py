"""Search latency at 100k and 1M indexed items: encoding, and kNN + metadata, reported separately.

    DJANGO_SETTINGS_MODULE=config.settings.dev python benchmarks/search_latency.py --sizes 100000,1000000

The collection's real vectors (from its index shards) are padded with synthetic ones drawn around them (a real
vector plus noise, renormalised), so the clusters look like real embeddings rather than uniform noise. The index is
built and published by embeddings.search.index exactly as in production (exact up to PROVENANT_INDEX_EXACT_MAX, IVF
beyond) into a scratch directory under var/benchmarks/, loaded memory-mapped, and queried through
`index.search_vectors` with an exclusion selector of 1,000 ids. Metadata is fetched with an indexed primary-key
query from a 1M-row SQLite table (var/benchmarks/latency-meta.sqlite3), as a search result page does. Recall@10 of
the approximate index is measured against exact brute force on the same vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")


def _percentiles(samples: list[float]) -> tuple[float, float]:
    return float(np.percentile(samples, 50) * 1000), float(np.percentile(samples, 95) * 1000)


def _padded_vectors(real: np.ndarray, size: int, dim: int, rng) -> np.ndarray:
    if len(real) == 0:
        real = rng.standard_normal((1000, dim)).astype(np.float32)
    out = np.empty((size, dim), dtype=np.float32)
    for start in range(0, size, 100_000):
        n = min(100_000, size - start)
        base = real[rng.integers(len(real), size=n)]
        chunk = base + rng.standard_normal((n, dim)).astype(np.float32) * 0.04
        out[start : start + n] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    out[: min(len(real), size)] = real[:size]
    return out


def _metadata_db(path: Path, size: int) -> sqlite3.Connection:
    fresh = not path.exists()
    db = sqlite3.connect(path)
    if fresh:
        db.execute(
            "CREATE TABLE asset (id INTEGER PRIMARY KEY, source TEXT, title TEXT, contributor TEXT, "
            "url TEXT, domain TEXT)"
        )
    have = db.execute("SELECT count(*) FROM asset").fetchone()[0]
    if have < size:
        rows = (
            (
                i,
                f"clipart/folder{i % 997}/work_{i}.svg",
                f"work number {i}",
                f"artist {i % 5000}",
                f"https://cdn{i % 50}.example.org/w/{i}.png",
                f"cdn{i % 50}.example.org",
            )
            for i in range(have, size)
        )
        db.executemany("INSERT INTO asset VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.commit()
    return db


def _exact_top(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(vectors), 200_000):
        scores = queries @ vectors[start : start + 200_000].T
        cat_scores = np.concatenate([best_scores, scores], axis=1)
        cat_ids = np.concatenate(
            [best_ids, np.broadcast_to(ids[start : start + 200_000], scores.shape)], axis=1
        )
        top = np.argpartition(-cat_scores, k, axis=1)[:, :k]
        best_scores = np.take_along_axis(cat_scores, top, axis=1)
        best_ids = np.take_along_axis(cat_ids, top, axis=1)
    return best_ids


def measure_size(size: int, real: np.ndarray, args, settings, lines: list[str], results: dict) -> None:
    from embeddings.encoders.space import EmbeddingSpace
    from embeddings.search import index

    rng = np.random.default_rng(size)
    dim = real.shape[1]
    space = EmbeddingSpace(model="latency-bench", pretrained=f"padded-{size}", dim=dim)
    settings.PROVENANT_INDEX_DIR = Path(args.scratch) / "index"
    shutil.rmtree(settings.PROVENANT_INDEX_DIR / space.id, ignore_errors=True)
    vectors = _padded_vectors(real, size, dim, rng)
    ids = np.arange(1, size + 1, dtype=np.int64)
    t0 = time.perf_counter()
    for start in range(0, size, 250_000):
        index.write_shard(space, ids[start : start + 250_000], vectors[start : start + 250_000])
    meta = index.publish_index(space, exact_max=settings.PROVENANT_INDEX_EXACT_MAX)
    build_s = time.perf_counter() - t0
    db = _metadata_db(Path(args.scratch) / "latency-meta.sqlite3", size)
    # queries: near-duplicates of indexed vectors (what a copy search sends)
    picks = rng.integers(size, size=args.queries)
    noisy = vectors[picks] + rng.standard_normal((args.queries, dim)).astype(np.float32) * 0.03
    queries = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    exclude = set(rng.integers(1, size + 1, size=1000).tolist())
    exact = _exact_top(vectors, ids, queries, 10)
    index.forget_loaded()
    index.search_vectors(space, queries[:1], 10)  # first load (mmap) is not a query
    for nprobe in args.nprobes if meta["kind"] == "ivf" else [0]:
        knn_t, meta_t, total_t, found = [], [], [], []
        for q in queries:
            t0 = time.perf_counter()
            _, hit_ids = index.search_vectors(space, q[None, :], 50, exclude_ids=exclude, nprobe=nprobe or 1)
            t1 = time.perf_counter()
            top = [int(i) for i in hit_ids[0][:10] if i >= 0]
            marks = ",".join("?" * len(top))
            db.execute(
                f"SELECT id, source, title, contributor, url, domain FROM asset WHERE id IN ({marks})", top
            ).fetchall()
            t2 = time.perf_counter()
            knn_t.append(t1 - t0)
            meta_t.append(t2 - t1)
            total_t.append(t2 - t0)
            found.append(top)
        source_found = np.mean(
            [int(ids[p]) in f for p, f in zip(picks, found, strict=True) if int(ids[p]) not in exclude]
        )
        recall = np.mean(
            [
                len(set(f) & (set(e.tolist()) - exclude)) / max(1, len(set(e.tolist()) - exclude))
                for f, e in zip(found, exact, strict=True)
            ]
        )
        k50, k95 = _percentiles(knn_t)
        m50, m95 = _percentiles(meta_t)
        t50, t95 = _percentiles(total_t)
        label = f"{meta['kind']}" + (f" nprobe {nprobe}" if nprobe else "")
        lines.append(
            f"| {size:,} | {label} | {k50:.1f} / {k95:.1f} | {m50:.2f} / {m95:.2f} | {t50:.1f} / {t95:.1f} "
            f"| {recall:.3f} | {source_found:.3f} | {build_s:.0f} |"
        )
        results[f"{size}-{label}"] = {
            "knn_ms": [k50, k95],
            "meta_ms": [m50, m95],
            "total_ms": [t50, t95],
            "recall_at_10_vs_exact": recall,
            "source_in_top10": source_found,
            "build_s": build_s,
        }
        print(lines[-1], flush=True)
    index.forget_loaded()
    shutil.rmtree(settings.PROVENANT_INDEX_DIR / space.id, ignore_errors=True)


def measure_parts(
    size: int, real: np.ndarray, real_parts: np.ndarray, args, settings, lines: list[str]
) -> None:
    """What an image search adds with part embeddings (embeddings.search.parts): a second kNN over PER_WORK vectors per
    work, for each of the same k works. Timed per query together with the whole-work kNN and the metadata, as the
    cascade runs them. Built with embeddings.search.index.build_index (exact or IVF by size, as published) and written
    where search_vectors loads it memory-mapped; the part vectors are padded from the collection's real ones."""
    import faiss

    from embeddings.encoders.space import EmbeddingSpace
    from embeddings.search import index, parts

    rng = np.random.default_rng(size + 1)
    dim = real.shape[1]
    settings.PROVENANT_INDEX_DIR = Path(args.scratch) / "index"
    spaces, built, vectors_of = [], [], {}
    for name, base, per in (("whole", real, 1), ("parts", real_parts, parts.PER_WORK)):
        space = EmbeddingSpace(model="latency-bench", pretrained=f"{name}-{size}", dim=dim)
        shutil.rmtree(settings.PROVENANT_INDEX_DIR / space.id, ignore_errors=True)
        vectors = _padded_vectors(base, size * per, dim, rng)
        ids = np.repeat(np.arange(1, size + 1, dtype=np.int64), per)
        t0 = time.perf_counter()
        kind, built_index = index.build_index(ids, vectors, exact_max=settings.PROVENANT_INDEX_EXACT_MAX)
        faiss.write_index(built_index, str(index.space_dir(space) / index.INDEX_FILE))
        (index.space_dir(space) / index.INDEX_META).write_text(json.dumps({"kind": kind}))
        del built_index
        built.append(f"{name} {kind} {len(ids):,} vectors {time.perf_counter() - t0:.0f} s")
        spaces.append(space)
        vectors_of[name] = vectors
    db = _metadata_db(Path(args.scratch) / "latency-meta.sqlite3", size)
    picks = rng.integers(size, size=args.queries)
    noisy = vectors_of["whole"][picks] + rng.standard_normal((args.queries, dim)).astype(np.float32) * 0.03
    queries = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    exclude = set(rng.integers(1, size + 1, size=1000).tolist())
    index.forget_loaded()
    for space in spaces:
        index.search_vectors(space, queries[:1], 10)  # first load (mmap) is not a query
    whole_space, part_space = spaces
    for nprobe in args.nprobes:
        whole_t, part_t, total_t = [], [], []
        for q in queries:
            t0 = time.perf_counter()
            _, hit_ids = index.search_vectors(whole_space, q[None, :], 50, exclude_ids=exclude, nprobe=nprobe)
            t1 = time.perf_counter()
            _, part_ids = index.search_vectors(
                part_space, q[None, :], 50 * parts.PER_WORK, exclude_ids=exclude, nprobe=nprobe
            )
            t2 = time.perf_counter()
            top = list(dict.fromkeys(int(i) for i in np.r_[hit_ids[0][:10], part_ids[0]] if i >= 0))[:10]
            db.execute(f"SELECT id, source, title FROM asset WHERE id IN ({','.join('?' * len(top))})", top)
            t3 = time.perf_counter()
            whole_t.append(t1 - t0)
            part_t.append(t2 - t1)
            total_t.append(t3 - t0)
        (w50, w95), (p50, p95), (t50, t95) = (_percentiles(x) for x in (whole_t, part_t, total_t))
        lines.append(
            f"| {size:,} | {size * parts.PER_WORK:,} | nprobe {nprobe} | {w50:.1f} / {w95:.1f} | {p50:.1f} / {p95:.1f} "
            f"| {t50:.1f} / {t95:.1f} |"
        )
        print(lines[-1], flush=True)
    lines.append(f"built: {'; '.join(built)}")
    index.forget_loaded()
    for space in spaces:
        shutil.rmtree(settings.PROVENANT_INDEX_DIR / space.id, ignore_errors=True)


def measure_encoding(args, lines: list[str], results: dict) -> None:
    """One uploaded picture: decode + encode (the cascade encodes the query, its mirror and one crop)."""
    from embeddings.encoders.factory import get_encoder
    from embeddings.search.cascade import query_views
    from provenance.imaging import load_rgb
    from provenance.models import Asset

    encoder = get_encoder()
    paths = list(Asset.objects.exclude(local_path="").order_by("?").values_list("local_path", flat=True)[:40])
    encoder.encode_images([load_rgb(Path(paths[0]).read_bytes()).image])  # warm-up (lazy model load)
    one, views = [], []
    for path in paths[1:]:
        image = load_rgb(Path(path).read_bytes()).image
        t0 = time.perf_counter()
        encoder.encode_images([image])
        t1 = time.perf_counter()
        encoder.encode_images([v for _, v in query_views(image)])
        t2 = time.perf_counter()
        one.append(t1 - t0)
        views.append(t2 - t1)
    for label, samples in (("1 view", one), (f"{len(query_views(image))} views (cascade)", views)):
        p50, p95 = _percentiles(samples)
        lines.append(f"| {encoder.space.id} | {label} | {p50:.0f} / {p95:.0f} |")
        results[f"encode-{label}"] = [p50, p95]
        print(lines[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobes", default="8,16,32")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for encoding")
    parser.add_argument("--skip-encoding", action="store_true")
    parser.add_argument(
        "--parts-sizes",
        default="",
        help="also time whole-work kNN + part kNN + metadata at these sizes (works), e.g. 1000000",
    )
    parser.add_argument("--scratch", default=str(ROOT / "var" / "benchmarks" / "latency"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "search_latency.json"))
    args = parser.parse_args()
    args.nprobes = [int(n) for n in args.nprobes.split(",")]
    Path(args.scratch).mkdir(parents=True, exist_ok=True)

    import django

    django.setup()
    from django.conf import settings

    from embeddings.encoders.factory import get_encoder
    from embeddings.search import index, parts

    real_space = get_encoder().space
    _, real = index.load_vectors(real_space)
    if args.parts_sizes:  # read before the sizes point PROVENANT_INDEX_DIR at the scratch folder
        _, real_parts = index.load_vectors(parts.parts_space(real_space))
        if len(real_parts) == 0:
            raise SystemExit(f"no part vectors in {parts.parts_space(real_space).id}: run manage.py index")
    basis = f"{len(real):,} real vectors of {real_space.id}"
    if len(real) == 0:
        basis = f"5,000 random {real_space.dim}-d vectors (no index in {real_space.id})"
        print("no indexed vectors in the configured space: padding from random vectors only")
        real = np.random.default_rng(0).standard_normal((5000, real_space.dim)).astype(np.float32)
        real /= np.linalg.norm(real, axis=1, keepdims=True)
    lines = [
        f"kNN (k=50, 1,000 ids excluded) + metadata (10 rows by primary key); {basis} padded; "
        f"{args.queries} near-duplicate queries; ms p50 / p95",
        "| indexed items | index | kNN | metadata | kNN + metadata | recall@10 vs exact | source in top 10 | build s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    results: dict = {}
    for size in [int(s) for s in args.sizes.split(",") if s]:
        measure_size(size, real.astype(np.float32), args, settings, lines, results)
    if args.parts_sizes:
        lines += [
            "",
            f"Image search with part embeddings: whole-work kNN (k=50) + part kNN (k=50 x {parts.PER_WORK}) + "
            f"metadata, {len(real_parts):,} real part vectors padded; ms p50 / p95",
            "| works | part vectors | IVF | whole kNN | part kNN | whole + parts + metadata |",
            "|---|---|---|---|---|---|",
        ]
        for size in [int(s) for s in args.parts_sizes.split(",")]:
            measure_parts(size, real.astype(np.float32), real_parts.astype(np.float32), args, settings, lines)
    if not args.skip_encoding:
        import torch

        torch.set_num_threads(args.threads)
        lines += [
            "",
            "Encoding one uploaded picture (decode excluded), ms p50 / p95",
            "| space | query | encode |",
            "|---|---|---|",
        ]
        measure_encoding(args, lines, results)
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text + "\n")
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
