"""The acceptance scenario of a killed worker: a manifest build queued on Celery over Redis with the product's
default settings, its worker (prefork, 2 processes, embedded beat) SIGKILLed, process group and all, once about
one shard in ten is done; a new worker started. Prints the time from the new worker's start to the publication,
next to the fault-free builds of the same input (the command line's, and Celery's from a worker's start), and whether
the outputs are byte-identical.

    python benchmarks/worker_crash.py --data var/bench/manifest-10000000-1000000 --redis redis://127.0.0.1:6379/9
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.manifest_data import AS_OF  # noqa: E402


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def query(db: Path, sql: str, *args):
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql, args).fetchone()


def worker(env: dict, log: Path, name: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "prefork", "-c", "2", "-B"]
    command += ["-s", str(log.with_suffix(f".{name}.beat")), "-l", "info", "-n", f"{name}@%h"]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    args = parser.parse_args()
    data, scratch = args.data.resolve(), args.data.resolve() / "crash-scratch"
    db = data / "registry.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "config.settings.dev",
           "DJANGO_DEBUG": "false", "DATABASE_URL": f"sqlite:///{db}", "PROVENANT_DATA_DIR": str(scratch),
           "PROVENANT_MANIFEST_DIR": str(scratch / "manifests"), "CELERY_BROKER_URL": args.redis,
           "CELERY_RESULT_BACKEND": args.redis}  # fmt: skip
    build = [
        sys.executable,
        "manage.py",
        "build_manifest",
        "--input",
        str(data / "manifest"),
        "--as-of",
        AS_OF,
    ]
    print("load before", os.getloadavg(), flush=True)
    t0 = time.perf_counter()
    out = subprocess.run(
        [*build, "--threads", "2"], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    cli_seconds = time.perf_counter() - t0
    cli_dir = Path(out.stdout.strip().rsplit("-> ", 1)[-1].strip())
    print(f"fault-free CLI build: {cli_seconds:.0f} s -> {cli_dir}", flush=True)
    log = scratch / "workers.log"
    # fault-free on Celery: queued, then a worker started; timed from the worker's start to the publication
    clean_id = queue_build(build, env)
    started = time.perf_counter()
    clean = worker(env, log, "clean")
    wait_published(db, clean_id)
    clean_seconds = time.perf_counter() - started
    stop(clean, signal.SIGTERM)
    print(f"fault-free Celery build: {clean_seconds:.0f} s from the worker's start", flush=True)
    # the scenario: a worker killed once about one shard in ten is done, a new worker started
    first = worker(env, log, "first")
    build_id = queue_build(build, env)
    queued_at = time.perf_counter()
    while shards_done(db, build_id) < 1:
        time.sleep(0.5)
    stop(first, signal.SIGKILL)
    done_at_kill = shards_done(db, build_id)
    print(f"killed {time.perf_counter() - queued_at:.0f} s after queueing, {done_at_kill} of 10 shards done",
          flush=True)  # fmt: skip
    started = time.perf_counter()
    second = worker(env, log, "second")
    wait_published(db, build_id)
    recovered = time.perf_counter() - started
    stop(second, signal.SIGTERM)
    same = {}
    for name, other in (("clean_celery", clean_id), ("crashed", build_id)):
        status, path = query(
            db, "select status, output_path from training_filter_manifestbuild where id=?", other
        )
        same[name] = status == "published" and digest(Path(path)) == digest(cli_dir)
    leases = query(
        db, "select count(*), max(attempts) from core_lease where job=?", f"manifest_build:{build_id}"
    )
    print(json.dumps({"cli_seconds": round(cli_seconds), "celery_fault_free_s": round(clean_seconds),
                      "new_worker_to_published_s": round(recovered), "shards_done_at_kill": done_at_kill,
                      "byte_identical_to_cli": same, "leases_and_max_attempts": leases,
                      "load_after": os.getloadavg()}), flush=True)  # fmt: skip


def queue_build(build: list[str], env: dict) -> int:
    queued = subprocess.run(
        [*build, "--async"], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    )
    return int(re.search(r"build (\d+) queued", queued.stdout).group(1))


def shards_done(db: Path, build_id: int) -> int:
    return query(db, "select shards_done from training_filter_manifestbuild where id=?", build_id)[0] or 0


def wait_published(db: Path, build_id: int) -> None:
    select = "select status from training_filter_manifestbuild where id=?"
    while query(db, select, build_id)[0] not in ("published", "failed"):
        time.sleep(0.5)


def stop(process: subprocess.Popen, sig: int) -> None:
    os.killpg(process.pid, sig)  # the whole worker: main process, pool processes and beat
    process.wait()


if __name__ == "__main__":
    main()
