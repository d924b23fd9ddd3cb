"""Manifest build benchmark: the product's real path against the DuckDB query an operator would write instead.

    .venv/bin/python benchmarks/manifest_build.py --rows 10000000 --registry 1000000 --repeat 3 --reference main

Data (generated once, cached under var/bench/manifest-<rows>-<registry>/, see benchmarks/manifest_data.py): an
img2dataset-style manifest in 1M-row Parquet files and an opt-out list of `--registry` keys, the list also loaded
through the product's models into SQLite (a file beside the data) and PostgreSQL (database
provenant_bench_<rows>_<registry> on --pg-url's server); `--replicate N` makes a larger input from a smaller one's
files N times over (hard links), with its opt-out list and databases. Then, interleaved, `--repeat` rounds of:
  cli-sqlite, cli-postgres  `manage.py build_manifest --input <manifest> --as-of <cut-off> --threads N`
          end to end: Django start-up, input SHA-256, registry streamed from the database and indexed, every shard
          (URL normalisation, URL/sha256/asset/pHash-within-radius/domain matching, removal list, Parquet),
          publishing with checksums;
  celery-postgres  the same build on Celery: `build_manifest --input ... --async` with a worker of N prefork
          processes on Redis (--redis-url), one task per shard and the finaliser the last one sends; the tree is the
          driver, the worker and its pool, and its time includes the worker's start-up (`build_s` in the log
          is enqueue to published alone);
  duckdb  one DuckDB query with N threads and a 1 GB memory limit: normalised URL, host and two parent domains,
          sha256 as uncorrelated NOT IN anti-joins, pHash within the radius by a 5-band join verified with
          bit_count, `SELECT * EXCLUDE` of the helper columns, kept rows written as zstd Parquet.
Each run is a fresh process tree; its peak memory is the largest sum over the tree of RSS (shared pages counted in
every process; sampled every 50 ms from the kernel's counters) and of PSS (shared pages divided among their users;
sampled once a second, as reading it stalls the process measured); CPU is user+sys of the tree. The load average is printed before and after every run. With --reference REF, the manifest is also built
once by the code at git ref REF (e.g. main) and its kept rows and removal list are compared with ours, row by row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.manifest_data import AS_OF, generate, load_registry, replicate  # noqa: E402

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
CREATE TABLE reg_bands AS
  SELECT b, (p >> (13 * b)) & 8191 AS v, p
  FROM (SELECT DISTINCT CAST(key AS BIGINT) AS p FROM reg WHERE kind = 'phash'), range(5) t(b);
CREATE TABLE near AS
  WITH m AS (SELECT DISTINCT phash AS p FROM read_parquet('{manifest}/*.parquet') WHERE phash IS NOT NULL),
  mb AS (SELECT p, b, (p >> (13 * b)) & 8191 AS v FROM m CROSS JOIN range(5) t(b))
  SELECT DISTINCT mb.p FROM mb JOIN reg_bands r ON r.b = mb.b AND r.v = mb.v
  WHERE bit_count(xor(mb.p, r.p)) <= {radius};
COPY (
  SELECT * EXCLUDE (k, h) FROM (
    SELECT *, url_key(url) AS k, host_of(rest_of(trim(url))) AS h FROM read_parquet('{manifest}/*.parquet')
  )
  WHERE k NOT IN (SELECT key FROM reg WHERE kind = 'url')
    AND lower(sha256) NOT IN (SELECT key FROM reg WHERE kind = 'sha256')
    AND h NOT IN (SELECT key FROM reg WHERE kind = 'domain')
    AND coalesce(parent(h), '') NOT IN (SELECT key FROM reg WHERE kind = 'domain')
    AND coalesce(parent(parent(h)), '') NOT IN (SELECT key FROM reg WHERE kind = 'domain')
    AND coalesce(phash NOT IN (SELECT p FROM near), true)
) TO '{out}/kept.parquet' (FORMAT parquet, COMPRESSION zstd);
"""


def run_duckdb(folder: Path, out: Path, threads: int, radius: int) -> None:
    """The contender, in its own process: DuckDB does the filtering and prints the kept row count."""
    import duckdb

    out.mkdir(parents=True)
    con = duckdb.connect(config={"threads": threads, "memory_limit": "1GB"})
    sql = DUCKDB_SQL.format(
        registry=folder / "registry.parquet", manifest=folder / "manifest", out=out, radius=radius
    )
    for statement in filter(str.strip, sql.split(";")):
        con.execute(statement)
    kept = con.execute(f"SELECT count(*) FROM read_parquet('{out}/kept.parquet')").fetchone()[0]
    print(json.dumps({"rows_out": kept}))


# --- databases and environments -----------------------------------------------------------------------------------
def database_urls(folder: Path, args) -> dict[str, str]:
    """The registry databases of the data in `folder` (a replicated input's are those of its base)."""
    urls = {"sqlite": f"sqlite:///{folder / 'registry.sqlite3'}"}
    if args.pg_url:
        urls["postgres"] = (
            f"{args.pg_url.rstrip('/')}/provenant_bench_{folder.name.removeprefix('manifest-')}"
        )
        urls["postgres"] = urls["postgres"].replace("-", "_")
    wanted = {*args.dbs.split(","), *args.celery.split(",")}
    return {name: url for name, url in urls.items() if name in wanted}


def django_env(database_url: str, data_dir: Path, source: Path = ROOT) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(source),
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DJANGO_DEBUG": "false",
        "DATABASE_URL": database_url,
        "PROVENANT_DATA_DIR": str(data_dir),
        "PROVENANT_MANIFEST_DIR": str(data_dir / "manifests"),
    }


def prepare_databases(folder: Path, urls: dict[str, str]) -> None:
    for name, url in urls.items():
        if name == "postgres":
            _create_pg_database(url)
        start = time.perf_counter()
        env = django_env(url, folder / "scratch-load")
        command = [sys.executable, __file__, "--child", "load", "--folder", str(folder)]
        subprocess.run(command, env=env, cwd=ROOT, check=True)
        print(f"registry in {name}: ready in {time.perf_counter() - start:.0f} s", flush=True)


def _create_pg_database(url: str) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as con:
        if not con.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            con.execute(f'CREATE DATABASE "{name}"')


# --- measuring a process tree -------------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _tree_pids(root: int) -> list[int]:
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack += _children(pid)
    return pids


def _tree_rss_kb(root: int) -> int:
    """Sum of RSS over the process tree under `root`, in kB, from /proc/PID/statm: the kernel's counters, read
    without walking the page tables (so sampling it every 50 ms does not slow the process it measures)."""
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    rss = 0
    for pid in _tree_pids(root):
        try:
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page_kb
        except OSError:
            continue
    return rss


def _tree_pss_kb(root: int) -> int:
    """Sum of PSS over the tree, in kB: smaps_rollup walks every page table under the process's memory lock,
    which stalls an allocating process (about 8 % of a 10M-row build's time when read every 50 ms), so it is
    read once a second."""
    pss = 0
    for pid in _tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return pss


PSS_EVERY = 20  # samples: PSS once a second, RSS every 50 ms


def measure(command: list[str], env: dict, cwd: Path) -> dict:
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        beat = 0
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
            if beat % PSS_EVERY == 0:
                peak[1] = max(peak[1], _tree_pss_kb(proc.pid))
            beat += 1
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-4000:]}")
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,  # wait4: the child and the descendants it reaped
        "tree_rss_mib": peak[0] / 1024,
        "tree_pss_mib": peak[1] / 1024,
        "load_before": round(load_before[0], 1),
        "load_after": round(os.getloadavg()[0], 1),
        "output": output,
    }


# --- contenders ----------------------------------------------------------------------------------------------------
def cli_build(folder: Path, url: str, scratch: Path, args, source: Path = ROOT) -> tuple[dict, Path]:
    """`manage.py build_manifest --input` in a fresh process tree; returns the measurement and the published folder."""
    shutil.rmtree(scratch, ignore_errors=True)
    command = [sys.executable, "manage.py", "build_manifest", "--input", str(folder / "manifest")]
    command += ["--as-of", AS_OF]
    if source == ROOT:
        command += ["--threads", str(args.threads)]
    env = {**django_env(url, scratch, source), "PROVENANT_MANIFEST_PHASH_RADIUS": str(args.phash_radius)}
    return _published(measure(command, env, source))


def duckdb_run(folder: Path, scratch: Path, args) -> dict:
    shutil.rmtree(scratch, ignore_errors=True)
    command = [
        sys.executable,
        __file__,
        "--child",
        "duckdb",
        "--folder",
        str(folder),
        "--scratch",
        str(scratch),
    ]
    command += ["--threads", str(args.threads), "--phash-radius", str(args.phash_radius)]
    result = measure(command, os.environ.copy(), ROOT)
    result["rows_out"] = json.loads(result["output"].strip().splitlines()[-1])["rows_out"]
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def run_celery(folder: Path, threads: int) -> None:
    """The Celery contender, in its own process with Django set up: a worker of `threads` prefork processes,
    the build enqueued as an operator would, polled until published; prints the published folder."""
    from django.conf import settings
    from django.core.management import call_command

    from training_filter.models import ManifestBuild

    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", settings.MANIFEST_CELERY_QUEUE]
    command += ["-P", "prefork", "-c", str(threads), "-l", "warning", "--without-gossip", "--without-mingle"]
    log = Path(os.environ["PROVENANT_DATA_DIR"]) / "celery-worker.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    worker = subprocess.Popen(
        command, env=os.environ, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        start = time.perf_counter()
        call_command("build_manifest", "--input", str(folder / "manifest"), "--as-of", AS_OF, "--async")
        build = ManifestBuild.objects.latest("id")
        while build.status not in (ManifestBuild.Status.PUBLISHED, ManifestBuild.Status.FAILED):
            time.sleep(0.2)
            build.refresh_from_db()
        if build.status != ManifestBuild.Status.PUBLISHED:
            raise SystemExit(f"build {build.pk} failed: {build.error}")
        print(f"build_s {time.perf_counter() - start:.1f}")
        print(f"build {build.pk} published -> {build.output_path}")
    finally:
        worker.terminate()
        worker.wait()


def celery_build(folder: Path, url: str, scratch: Path, args) -> tuple[dict, Path]:
    """`run_celery` in a fresh process tree, on its own Redis database (emptied first)."""
    import redis

    shutil.rmtree(scratch, ignore_errors=True)
    redis.Redis.from_url(args.redis_url).flushdb()
    env = {
        **django_env(url, scratch),
        "PROVENANT_MANIFEST_PHASH_RADIUS": str(args.phash_radius),
        "CELERY_BROKER_URL": args.redis_url,
        "CELERY_RESULT_BACKEND": args.redis_url,
    }
    command = [sys.executable, __file__, "--child", "celery", "--folder", str(folder)]
    result = measure([*command, "--threads", str(args.threads)], env, ROOT)
    return _published(result)


def _published(result: dict) -> tuple[dict, Path]:
    published = Path(result["output"].strip().rsplit("-> ", 1)[-1].strip())
    stats = json.loads((published / "stats.json").read_text())
    result.update(rows_out=stats["rows_out"], removed=stats["removed_by_reason"])
    result["manifest_sha256"] = _sha256(published / "manifest.json")
    return result, published


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the same rows as the reference code -----------------------------------------------------------------------
def reference_build(folder: Path, url: str, ref: str, args) -> Path:
    """Build once with the code at git ref `ref` (e.g. main), on the same database and input."""
    source = folder / f"ref-{ref.replace('/', '_')}"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    result, published = cli_build(folder, url, folder / "scratch-reference", args, source=source)
    print(f"reference {ref}: {_summary(result)}", flush=True)
    return published


def same_rows(ours: Path, theirs: Path) -> dict:
    """Kept rows (every data part, in order) and the removal list, compared row by row."""
    import pyarrow.parquet as pq

    parts = sorted(p.name for p in (ours / "data").glob("*.parquet"))
    if parts != sorted(p.name for p in (theirs / "data").glob("*.parquet")):
        return {"kept_equal": False, "removals_equal": False, "why": "different shard files"}
    kept = all(
        pq.read_table(ours / "data" / name).equals(pq.read_table(theirs / "data" / name)) for name in parts
    )
    removals = pq.read_table(ours / "removals.parquet").equals(pq.read_table(theirs / "removals.parquet"))
    return {"kept_equal": kept, "removals_equal": removals}


# --- harness --------------------------------------------------------------------------------------------------------
def _summary(result: dict) -> str:
    keys = ("wall_s", "cpu_s", "tree_rss_mib", "tree_pss_mib", "load_before", "load_after", "rows_out")
    return json.dumps({k: round(result[k], 1) if isinstance(result[k], float) else result[k] for k in keys})


def rounds(folder: Path, urls: dict[str, str], args) -> tuple[dict[str, list[dict]], dict[str, Path]]:
    clis = [f"cli-{db}" for db in args.dbs.split(",") if db]
    names = [*clis, *(f"celery-{db}" for db in args.celery.split(",") if db), "duckdb"]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    first_output: dict[str, Path] = {}
    for round_ in range(args.repeat):
        for name in runs:  # interleaved: both sides see the same load
            scratch = folder / f"scratch-{name}-{round_}"
            if name == "duckdb":
                result = duckdb_run(folder, folder / "scratch-duckdb", args)
            else:
                kind, db = name.split("-", 1)
                build = cli_build if kind == "cli" else celery_build
                result, published = build(folder, urls[db], scratch, args)
                first_output.setdefault(name, published)
                if published != first_output[name]:
                    shutil.rmtree(scratch, ignore_errors=True)
            runs[name].append(result)
            print(f"round {round_ + 1} {name}: {_summary(result)}", flush=True)
    return runs, first_output


def report(args, runs: dict[str, list[dict]]) -> dict:
    print(
        f"\n{args.rows:,} rows, {args.registry:,} opt-out keys, median of {args.repeat}, {os.cpu_count()} CPUs"
    )
    print(
        f"{'':13} {'time (s)':>9} {'CPU (s)':>8} {'rows/s':>10} {'tree RSS':>9} {'tree PSS':>9} {'rows out':>11}"
    )
    table = {}
    for name, results in runs.items():
        row = {
            "wall_s": statistics.median(r["wall_s"] for r in results),
            "cpu_s": statistics.median(r["cpu_s"] for r in results),
            "tree_rss_mib": max(r["tree_rss_mib"] for r in results),
            "tree_pss_mib": max(r["tree_pss_mib"] for r in results),
            "rows_out": results[0]["rows_out"],
            "loads": [(r["load_before"], r["load_after"]) for r in results],
        }
        table[name] = row
        print(
            f"{name:13} {row['wall_s']:9.1f} {row['cpu_s']:8.1f} {args.rows / row['wall_s']:10,.0f} "
            f"{row['tree_rss_mib']:8.0f}M {row['tree_pss_mib']:8.0f}M {row['rows_out']:11,}"
        )
    for name in table:
        if name != "duckdb":
            ratio = table[name]["wall_s"] / table["duckdb"]["wall_s"]
            print(f"{name} / duckdb: wall time {ratio:.2f}x", end=", ")
            print(f"CPU time {table[name]['cpu_s'] / table['duckdb']['cpu_s']:.2f}x")
    hashes = {r["manifest_sha256"] for name, rs in runs.items() if name != "duckdb" for r in rs}
    print(f"every CLI run published the same manifest.json: {len(hashes) == 1}")
    return table


def data_folder(rows: int, args) -> Path:
    folder = ROOT / "var" / "bench" / f"manifest-{rows}-{args.registry}"
    if args.replicate > 1 and rows == args.rows:
        return folder.with_name(f"{folder.name}-x{args.replicate}")
    if not (folder / "registry.parquet").exists():
        print(f"generating {rows:,} rows and {args.registry:,} registry keys in {folder}", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        generate(folder, rows, args.registry)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--registry", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--phash-radius", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads and CLI shard threads")
    parser.add_argument("--dbs", default="sqlite,postgres", help="registry databases for the CLI runs")
    parser.add_argument("--pg-url", default="postgres://provenant:provenant@127.0.0.1:5432")
    parser.add_argument(
        "--celery", default="", help="registry databases for Celery runs (e.g. postgres); none by default"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10", help="broker for --celery runs")
    parser.add_argument(
        "--reference", default="", help="git ref whose build must give the same rows (e.g. main)"
    )
    parser.add_argument(
        "--replicate", type=int, default=1, help="make --rows from the --rows/N data's files N times over"
    )
    parser.add_argument("--child", choices=["load", "duckdb", "celery"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "load":
        import django

        django.setup()
        print(f"{load_registry(Path(args.folder)):,} keys in the database", flush=True)
        return
    if args.child == "celery":
        import django

        django.setup()
        run_celery(Path(args.folder), args.threads)
        return
    if args.child == "duckdb":
        run_duckdb(Path(args.folder), Path(args.scratch), args.threads, args.phash_radius)
        return
    folder = data_folder(args.rows, args)
    base = data_folder(args.rows // args.replicate, args) if args.replicate > 1 else folder
    if args.replicate > 1:
        replicate(base, folder, args.replicate)
    urls = database_urls(base, args)
    prepare_databases(base, urls)
    runs, outputs = rounds(folder, urls, args)
    table = report(args, runs)
    if args.reference:
        name = next(iter(outputs))
        reference = reference_build(folder, urls[name.removeprefix("cli-")], args.reference, args)
        table["reference"] = {
            "ref": args.reference,
            "compared_with": name,
            **same_rows(outputs[name], reference),
        }
        print(f"same rows as {args.reference} ({name}): {json.dumps(table['reference'])}")
        shutil.rmtree(reference.parents[1], ignore_errors=True)
        shutil.rmtree(folder / f"ref-{args.reference.replace('/', '_')}", ignore_errors=True)
    for path in outputs.values():
        shutil.rmtree(path.parents[1], ignore_errors=True)
    out = folder.parent / f"manifest-results-{args.rows}-{args.registry}.json"
    out.write_text(json.dumps({"args": vars(args), "medians": table, "runs": _plain(runs)}, indent=2))
    print(f"results: {out}")


def _plain(runs: dict[str, list[dict]]) -> dict:
    return {name: [{k: v for k, v in r.items() if k != "output"} for r in rs] for name, rs in runs.items()}


if __name__ == "__main__":
    main()
