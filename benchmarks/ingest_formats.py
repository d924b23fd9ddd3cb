"""Ingest throughput and memory by training-set layout: the same openclipart PNGs as a webdataset (tar shards),
img2dataset-style Parquet (bytes in a `png` column), img2dataset-style files (00000/key.png + .json) and a plain
folder, each ingested by `manage.py ingest` into a fresh SQLite database with 2 decoding processes.

    nice -n 10 .venv/bin/python benchmarks/ingest_formats.py --count 20000 --shard-size 1000 --repeat 2

The openclipart PNGs (~6,900) are reused cyclically to reach --count rows (each row is its own work). Data is
generated once under var/bench/ingest-<count>-<shard>/. The layouts run interleaved, round after round, so that a
change in the machine's load falls on all of them; prints the median time, images/s and the peak RSS of the whole
process tree (the command and its decoding processes, summed, sampled every 0.2 s) over the rounds, and the load
average before and after: the machine may be shared.
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
PNG_ROOT = Path("/usr/share/openclipart/png")
LAYOUTS = ("webdataset", "parquet", "files", "folder")


def sources(count: int) -> list[Path]:
    pngs = sorted(p for p in PNG_ROOT.rglob("*.png") if p.is_file() and not p.is_symlink())
    return [pngs[i % len(pngs)] for i in range(count)]


def make_data(base: Path, count: int, shard_size: int, layouts: list[str]) -> None:
    """Writes each requested layout once; a layout's `done-<layout>` marker says it is complete."""
    writers = {"webdataset": _webdataset, "parquet": _parquet, "files": _files, "folder": _folder}
    paths = sources(count)
    for layout in layouts:
        if (base / f"done-{layout}").exists():
            continue
        shutil.rmtree(base / layout, ignore_errors=True)
        writers[layout](base / layout, paths, shard_size)
        (base / f"done-{layout}").touch()


def _meta(number: int, path: Path, shard_size: int) -> tuple[str, dict]:
    key = f"{number // shard_size:05d}{number % shard_size:04d}"
    url = f"https://openclipart.example/{path.relative_to(PNG_ROOT)}?n={number}"
    return key, {"key": key, "url": url, "caption": path.stem.replace("_", " "), "status": "success"}


def _webdataset(out: Path, paths: list[Path], shard_size: int) -> None:
    import webdataset

    out.mkdir(parents=True)
    with webdataset.ShardWriter(str(out / "%05d.tar"), maxcount=shard_size, verbose=0) as writer:
        for number, path in enumerate(paths):
            key, meta = _meta(number, path, shard_size)
            writer.write({"__key__": key, "png": path.read_bytes(), "txt": meta["caption"], "json": meta})


def _parquet(out: Path, paths: list[Path], shard_size: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True)
    for start in range(0, len(paths), shard_size):
        rows = [{**_meta(n, p, shard_size)[1], "png": p.read_bytes()}
                for n, p in enumerate(paths[start : start + shard_size], start=start)]  # fmt: skip
        pq.write_table(
            pa.Table.from_pylist(rows), out / f"{start // shard_size:05d}.parquet", row_group_size=256
        )


def _files(out: Path, paths: list[Path], shard_size: int) -> None:
    out.mkdir(parents=True)
    for number, path in enumerate(paths):
        key, meta = _meta(number, path, shard_size)
        shard = out / f"{number // shard_size:05d}"
        shard.mkdir(exist_ok=True)
        shutil.copyfile(path, shard / f"{key}.png")
        (shard / f"{key}.json").write_text(json.dumps(meta))
    (out / "00000_stats.json").write_text("{}")


def _folder(out: Path, paths: list[Path], shard_size: int) -> None:
    for number, path in enumerate(paths):
        folder = out / f"{number // shard_size:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / f"{number:06d}-{path.name}")


def tree_rss_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


def run_layout(base: Path, layout: str, workers: int) -> dict:
    data_dir = base / f"db-{layout}"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir()
    env = {**os.environ, "PROVENANT_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "config.settings.dev",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True)
    started = time.perf_counter()
    command = [*manage, "ingest", str(base / layout), "--collection", layout, "--workers", str(workers)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss_kb(process.pid))
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    summary = process.stdout.read().strip().splitlines()
    return {"seconds": elapsed, "peak_mb": peak / 1024, "summary": summary[-1] if summary else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the layouts are interleaved in each")
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    args = parser.parse_args()
    layouts = args.layouts.split(",")
    base = ROOT / "var" / "bench" / f"ingest-{args.count}-{args.shard_size}"
    make_data(base, args.count, args.shard_size, layouts)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    runs: dict[str, list[dict]] = {layout: [] for layout in layouts}
    for _ in range(args.repeat):
        for layout in layouts:
            runs[layout].append(run_layout(base, layout, args.workers))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    median = {layout: statistics.median(r["seconds"] for r in runs[layout]) for layout in layouts}
    folder = median.get("folder")
    print(f"\n{args.count} images, shards of {args.shard_size}, {args.workers} decoding processes, "
          f"median of {args.repeat} interleaved rounds")  # fmt: skip
    print(f"{'layout':<12}{'seconds':>9}{'images/s':>10}{'vs folder':>11}{'peak RSS MB':>13}  each round (s)")
    for layout in layouts:
        ratio = f"{median[layout] / folder:.2f}x" if folder else "-"
        peak = max(r["peak_mb"] for r in runs[layout])
        rounds = " ".join(f"{r['seconds']:.0f}" for r in runs[layout])
        print(
            f"{layout:<12}{median[layout]:>9.1f}{args.count / median[layout]:>10.1f}{ratio:>11}{peak:>13.0f}  {rounds}"
        )
    for layout in layouts:
        print(f"  {layout}: {runs[layout][-1]['summary']}")


if __name__ == "__main__":
    main()
