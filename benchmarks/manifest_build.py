"""Manifest build benchmark: the build's filter path against a DuckDB anti-join of the exact-key part.

    nice -n 10 .venv/bin/python benchmarks/manifest_build.py --rows 10000000 --registry 1000000 --repeat 3

Generates once (cached under var/bench/manifest-<rows>/) a synthetic img2dataset manifest in 1M-row Parquet
files (Zipf-distributed domains with subdomains, mixed URL spellings, Zipf-worded captions, sha256, pHash) and an
opt-out registry of normalised keys across the rule kinds (url, domain, sha256, phash, asset). Then runs, in
fresh subprocesses, interleaved, `--repeat` times each:
  build   the Provenant build end to end minus Django: input hash, registry snapshot, every shard through
          training_filter.pipeline (URL normalisation, URL/domain/sha256/asset/pHash-within-radius matching,
          removal list), publish (manifest.json with SHA-256 of every file);
  duckdb  COPY (kept rows) TO Parquet with uncorrelated NOT IN on normalised URL, host and parent domains,
          and sha256 (exact keys only: no pHash, no removal list, no fixed order).
Prints median wall time, rows/s and peak RSS (VmHWM of each child process) and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FILE_ROWS = 1_000_000
ROW_GROUP = 131_072


# --- data generation ----------------------------------------------------------------------------------------
def _words(rng, count: int):
    import numpy as np

    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    lengths = rng.integers(3, 10, size=count)
    return ["".join(map(chr, letters[rng.integers(0, 26, size=n)])) for n in lengths]


def _hex(rng, n: int, nbytes: int):
    import numpy as np
    import pyarrow as pa

    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((n, nbytes * 2), dtype=np.uint8)
    out[:, 0::2], out[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(nbytes * 2), n, [None, pa.py_buffer(out.tobytes())]
    )
    return fixed.cast(pa.binary()).cast(pa.string())


def _zipf_index(rng, n: int, size: int, a: float = 1.15):
    import numpy as np

    ranks = np.arange(1, size + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-a)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(n)), size - 1)


def generate(folder: Path, rows: int, registry_size: int, seed: int = 5) -> None:
    """Write folder/manifest/part-*.parquet and folder/registry.parquet (kind, key, reason, rule, optout_id)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from core.urlnorm import normalize_url

    rng = np.random.default_rng(seed)
    tlds = np.array(["com", "org", "net", "co.uk", "de", "fr", "io", "jp", "com.br", "art"])
    stems = _words(rng, 200_000)
    domains = pa.array([f"{s}{i % 97}.{tlds[i % len(tlds)]}" for i, s in enumerate(stems)])
    subs = pa.array(["", "www.", "cdn.", "img.", "images.", "static.", "media.", "WWW.", "i.", "blog."])
    vocab = pa.array(_words(rng, 20_000))
    (folder / "manifest").mkdir(parents=True, exist_ok=True)
    url_sample, sha_sample, phash_sample = [], [], []
    for start in range(0, rows, FILE_ROWS):
        n = min(FILE_ROWS, rows - start)
        dom = _zipf_index(rng, n, len(domains))
        host = pc.binary_join_element_wise(
            subs.take(pa.array(rng.integers(0, len(subs), n))), domains.take(pa.array(dom)), ""
        )
        scheme = pa.array(np.where(rng.random(n) < 0.8, "https://", "http://"))
        ids = pc.cast(pa.array(np.arange(start, start + n)), pa.string())
        slug = vocab.take(pa.array(_zipf_index(rng, n, len(vocab))))
        folder_ = pa.array(np.char.add("/images/", rng.integers(2010, 2025, n).astype(str)))
        ext = pa.array(np.array([".jpg", ".JPG", ".png", ".webp", ".jpeg/"])[rng.integers(0, 5, n)])
        query = pa.array(np.where(rng.random(n) < 0.03, "?w=512&h=512", ""))
        url = pc.binary_join_element_wise(scheme, host, folder_, "/", slug, "-", ids, ext, query, "")
        nwords = rng.integers(4, 16, n)
        offsets = pa.array(np.concatenate([[0], np.cumsum(nwords)]).astype(np.int32))
        words = vocab.take(pa.array(_zipf_index(rng, int(nwords.sum()), len(vocab))))
        caption = pc.binary_join(pa.ListArray.from_arrays(offsets, words), " ")
        sha = _hex(rng, n, 32)
        phash = rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64)
        table = pa.table(
            {
                "key": pc.utf8_lpad(ids, 9, "0"), "url": url, "caption": caption,
                "width": pa.array(rng.integers(256, 2048, n).astype(np.int32)),
                "height": pa.array(rng.integers(256, 2048, n).astype(np.int32)),
                "sha256": sha, "phash": pa.array(phash), "license": pa.array(np.where(rng.random(n) < 0.5, "CC-BY", "")),
            }
        )  # fmt: skip
        pq.write_table(
            table,
            folder / "manifest" / f"part-{start // FILE_ROWS:05d}.parquet",
            row_group_size=ROW_GROUP,
            compression="zstd",
        )
        pick = rng.random(n)
        url_sample += url.filter(pa.array(pick < 0.015)).to_pylist()
        sha_sample += sha.filter(pa.array(pick > 0.99)).to_pylist()
        phash_sample.append(phash[(pick > 0.3) & (pick < 0.305)])
        print(f"  generated {start + n:,} rows", flush=True)
    _write_registry(
        folder,
        rng,
        registry_size,
        url_sample,
        sha_sample,
        np.concatenate(phash_sample),
        stems,
        tlds,
        normalize_url,
    )


def _write_registry(folder, rng, size, urls, shas, phashes, stems, tlds, normalize_url) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts = {
        "url": size * 50 // 100,
        "sha256": size * 25 // 100,
        "phash": size * 15 // 100,
        "domain": size * 2 // 100,
    }
    counts["asset"] = size - sum(counts.values())
    rows: dict[str, list[str]] = {"kind": [], "key": []}

    def add(kind, keys):
        rows["kind"] += [kind] * len(keys)
        rows["key"] += list(keys)

    # opted-out URLs: some in the manifest (in other spellings: normalised keys still meet), the rest elsewhere
    present = [normalize_url(u) for u in urls[: counts["url"] // 2]]
    add("url", present + [f"elsewhere{i}.example/{i}.jpg" for i in range(counts["url"] - len(present))])
    present = shas[: counts["sha256"] // 2]
    add("sha256", present + _hex(rng, counts["sha256"] - len(present), 32).to_pylist())
    near = phashes[: counts["phash"] // 3].view(np.uint64).copy()
    flips = rng.integers(0, 64, size=(len(near), 3))
    for column in range(rng.integers(0, 4)):
        near ^= np.uint64(1) << flips[:, column].astype(np.uint64)
    others = rng.integers(-(2**63), 2**63 - 1, size=counts["phash"] - len(near), dtype=np.int64)
    add("phash", [str(v) for v in np.concatenate([near.view(np.int64), others])])
    tail = rng.choice(
        np.arange(2_000, len(stems)), size=counts["domain"], replace=False
    )  # opted-out sites, off the head
    add("domain", [f"{stems[i]}{i % 97}.{tlds[i % len(tlds)]}" for i in tail])
    add("asset", [str(i) for i in rng.integers(1, 10**9, counts["asset"])])
    n = len(rows["kind"])
    ids = [str(i % 50_000) for i in range(n)]
    table = pa.table({**rows, "reason": ["artist opt-out"] * n, "rule": rows["kind"], "optout_id": ids})
    pq.write_table(table, folder / "registry.parquet")


# --- the two contenders (each runs in its own subprocess) ----------------------------------------------------
def run_build(folder: Path, out: Path, phash_radius: int, batch_rows: int, workers: int) -> dict:
    import pyarrow.parquet as pq

    from training_filter.pipeline import parquet_input
    from training_filter.pipeline.publish import assemble
    from training_filter.pipeline.registry import load_index, write_snapshot
    from training_filter.pipeline.shard import filter_shard

    timings, start = {}, time.perf_counter()
    work = out / "work"
    work.mkdir(parents=True)
    ref = str(folder / "manifest")
    digest = parquet_input.content_hash(ref)
    timings["input_hash_s"] = time.perf_counter() - start
    specs = parquet_input.plan_shards(ref, target_rows=FILE_ROWS)
    write_snapshot(pq.read_table(folder / "registry.parquet"), work / "registry.arrow")
    registry = load_index(str(work / "registry.arrow"), phash_radius)
    timings["registry_s"] = time.perf_counter() - start - timings["input_hash_s"]
    timings["hwm_after_registry_mb"] = _vm_hwm_mb()
    from concurrent.futures import ThreadPoolExecutor

    def shard(index: int):
        return filter_shard(
            parquet_input.read_shard(ref, specs[index], batch_rows=batch_rows), registry,
            out_path=work / f"part-{index:05d}.parquet", removed_path=work / f"removed-{index:05d}.parquet",
        )  # fmt: skip

    # as a Celery worker with `--pool threads -c N`: shards in parallel, one shared registry index
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(shard, range(len(specs))))
    rows_in, rows_out = sum(r.rows_in for r in results), sum(r.rows_out for r in results)
    shards_done = time.perf_counter()
    stats = {"rows_in": rows_in, "rows_out": rows_out}
    assemble(
        work_dir=work,
        shard_count=len(specs),
        stats=stats,
        params={"input": digest},
        final_dir=out / "published",
    )
    timings["filter_s"] = shards_done - start - timings["input_hash_s"] - timings["registry_s"]
    timings["publish_s"] = time.perf_counter() - shards_done
    return {"rows_in": rows_in, "rows_out": rows_out, **timings}


DUCKDB_SQL = """
CREATE MACRO rest_of(u) AS split_part(CASE WHEN contains(u, '://') THEN substr(u, strpos(u, '://') + 3) ELSE u END, '#', 1);
CREATE MACRO hostport(r) AS lower(split_part(split_part(r, '/', 1), '?', 1));
CREATE MACRO host_of(r) AS rtrim(regexp_replace(split_part(hostport(r), ':', 1), '^www\\.', ''), '.');
CREATE MACRO path_of(r) AS substr(r, length(split_part(split_part(r, '/', 1), '?', 1)) + 1);
CREATE MACRO url_key(u) AS host_of(rest_of(trim(u))) || CASE
    WHEN length(split_part(path_of(rest_of(trim(u))), '?', 1)) <= 1 THEN '/'
    ELSE rtrim(split_part(path_of(rest_of(trim(u))), '?', 1), '/') END;
CREATE MACRO parent(h) AS CASE WHEN contains(substr(h, strpos(h, '.') + 1), '.') THEN substr(h, strpos(h, '.') + 1) END;
CREATE TABLE reg AS SELECT kind, key FROM read_parquet('{registry}');
COPY (
  SELECT * FROM (
    SELECT *, url_key(url) AS k, host_of(rest_of(trim(url))) AS h FROM read_parquet('{manifest}/*.parquet')
  )
  WHERE k NOT IN (SELECT key FROM reg WHERE kind = 'url')
    AND lower(sha256) NOT IN (SELECT key FROM reg WHERE kind = 'sha256')
    AND h NOT IN (SELECT key FROM reg WHERE kind = 'domain')
    AND coalesce(parent(h), '') NOT IN (SELECT key FROM reg WHERE kind = 'domain')
    AND coalesce(parent(parent(h)), '') NOT IN (SELECT key FROM reg WHERE kind = 'domain')
) TO '{out}/kept.parquet' (FORMAT parquet, COMPRESSION zstd);
"""


def run_duckdb(folder: Path, out: Path, threads: int, memory_limit: str) -> dict:
    import duckdb

    out.mkdir(parents=True)
    con = duckdb.connect(config={"threads": threads, "memory_limit": memory_limit})
    sql = DUCKDB_SQL.format(registry=folder / "registry.parquet", manifest=folder / "manifest", out=out)
    for statement in filter(str.strip, sql.split(";")):
        con.execute(statement)
    kept = con.execute(f"SELECT count(*) FROM read_parquet('{out}/kept.parquet')").fetchone()[0]
    return {"rows_out": kept}


def _vm_hwm_mb() -> float:
    """Peak resident set of this process image (VmHWM is per address space, so it starts afresh at exec,
    unlike ru_maxrss, which a forked child inherits from its parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- harness --------------------------------------------------------------------------------------------------
def measure(args, contender: str, folder: Path, scratch: Path) -> dict:
    shutil.rmtree(scratch, ignore_errors=True)
    command = [
        sys.executable,
        __file__,
        "--child",
        contender,
        "--folder",
        str(folder),
        "--scratch",
        str(scratch),
    ]
    command += ["--phash-radius", str(args.phash_radius), "--batch-rows", str(args.batch_rows)]
    command += ["--threads", str(args.threads)]
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    output = proc.stdout.read().decode()
    if status != 0:
        raise SystemExit(f"{contender} failed:\n{output}")
    result = json.loads(output.strip().splitlines()[-1])
    shutil.rmtree(scratch, ignore_errors=True)
    # CPU seconds of the child alone: on a shared machine, a fairer cost than wall time
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, **result}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--registry", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--phash-radius", type=int, default=4)
    parser.add_argument("--batch-rows", type=int, default=65_536)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["build", "duckdb"], default=None)
    parser.add_argument("--child", choices=["build", "duckdb"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, scratch = Path(args.folder), Path(args.scratch)
        if args.child == "build":
            result = run_build(folder, scratch, args.phash_radius, args.batch_rows, args.threads)
        else:
            result = run_duckdb(folder, scratch, args.threads, "1GB")
        print(json.dumps({**result, "vm_hwm_mb": _vm_hwm_mb()}))
        return
    folder = ROOT / "var" / "bench" / f"manifest-{args.rows}-{args.registry}"
    if not (folder / "registry.parquet").exists():
        print(f"generating {args.rows:,} rows and {args.registry:,} registry keys in {folder}", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        generate(folder, args.rows, args.registry)
    contenders = [args.only] if args.only else ["build", "duckdb"]
    runs: dict[str, list[dict]] = {c: [] for c in contenders}
    for round_ in range(args.repeat):
        for contender in contenders:  # interleaved: machine noise hits both alike
            result = measure(args, contender, folder, folder.parent / f"scratch-{contender}")
            runs[contender].append(result)
            print(
                f"round {round_ + 1} {contender}: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()})}",
                flush=True,
            )
    print(
        f"\n{args.rows:,} rows, {args.registry:,} opt-out keys, median of {args.repeat}, {os.cpu_count()} CPUs"
    )
    print(f"{'':8} {'time (s)':>9} {'CPU (s)':>8} {'rows/s':>11} {'peak RSS (MB)':>14} {'rows out':>11}")
    medians = {}
    for contender, results in runs.items():
        wall = statistics.median(r["wall_s"] for r in results)
        rss = max(r["vm_hwm_mb"] for r in results)
        cpu = statistics.median(r["cpu_s"] for r in results)
        medians[contender] = (wall, cpu)
        print(
            f"{contender:8} {wall:9.1f} {cpu:8.1f} {args.rows / wall:11,.0f} {rss:14.0f} {results[0]['rows_out']:11,}"
        )
    if len(medians) == 2:
        (bw, bc), (dw, dc) = medians["build"], medians["duckdb"]
        print(f"build / duckdb: wall time {bw / dw:.2f}x, CPU time {bc / dc:.2f}x")


if __name__ == "__main__":
    main()
