"""Real Celery workers for the crash tests: the product's own app (config.celery) and settings on a real Redis,
prefork pool with embedded beat (the lease reaper), each in its own process group so that a test can SIGKILL the
whole worker (its main process, its pool processes and its beat) as a lost machine would be lost.

Only the lease intervals are short (1 s heartbeats, 10 missed = dead, a reaper every 2 s): values a deployment
may also choose. The broker's visibility timeout stays at the production default, so nothing here depends on
Redis redelivering a message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
REDIS = (
    os.environ.get("PROVENANT_TEST_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
)
# 10 missed beats: a niced worker on a loaded 2-core test machine can go seconds unscheduled without being dead
LEASE_ENV = {
    "PROVENANT_LEASE_HEARTBEAT_S": "1",
    "PROVENANT_LEASE_MISSED_BEATS": "10",
    "PROVENANT_LEASE_REAP_S": "2",
}


def require_redis_and_postgres() -> None:
    redis = pytest.importorskip("redis")
    if connection.vendor != "postgresql":
        pytest.skip("the workers share the test database: PostgreSQL only")
    try:
        redis.Redis.from_url(REDIS).ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("REDIS_URL"):  # CI (make test) exports REDIS_URL and must not skip
            raise
        pytest.skip("no Redis")


def worker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.dev",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": REDIS,
        "CELERY_RESULT_BACKEND": REDIS,
        "PROVENANT_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(ROOT),
        **LEASE_ENV,
        **extra,
    }


def start_worker(env: dict, queue: str, log: Path, name: str, concurrency: int = 2) -> subprocess.Popen:
    # the test's own default queue: its reaper and unrouted tasks never meet another test's (or a benchmark's)
    env = {**env, "CELERY_TASK_DEFAULT_QUEUE": queue, "TEST_QUEUE": queue}
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-P", "prefork"]
    command += ["-c", str(concurrency), "-B", "-s", str(log.with_suffix(f".{name}.beat")), "-l", "info"]
    command += ["-n", f"{name}@%h"]
    return subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )


def kill_worker(worker: subprocess.Popen) -> None:
    """SIGKILL every process of the worker at once: nothing gets to acknowledge, release or clean up."""
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    worker.wait(timeout=30)


def send(task: str, args: list, queue: str) -> None:
    """Send to the workers' Redis; the test process's own Celery stays eager for the tests after this one."""
    from config.celery import app

    with app.connection_for_write(REDIS) as conn:
        app.send_task(task, args=args, queue=queue, connection=conn)


def send_from_a_process(env: dict, task: str, args: list) -> None:
    """Send as an operator's process would, with the workers' settings: works on any broker (the filesystem one
    included, whose folders only processes with the same PROVENANT_DATA_DIR share)."""
    module = task.rpartition(".")[0]
    code = f"import config.celery, {module}; from celery import current_app; "
    code += f"current_app.tasks[{task!r}].apply_async(args={args!r})"
    command = [sys.executable, "manage.py", "shell", "-c", code]
    subprocess.run(command, env={**env, "CELERY_TASK_DEFAULT_QUEUE": env["TEST_QUEUE"]}, cwd=ROOT, check=True)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
