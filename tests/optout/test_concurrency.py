"""Concurrent writers against a real multi-process, multi-threaded server (gunicorn on loopback): approvals,
revocations and creates racing on the same opt-outs never answer 5xx, on SQLite (the embedded default, WAL and
IMMEDIATE transactions) as on PostgreSQL, and leave a consistent history and an intact audit chain."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.db import connection

from optout.services import ALLOWED_TRANSITIONS

ROOT = Path(__file__).resolve().parents[2]

SEED = """
import json
from django.contrib.auth.models import Group
from knox.models import AuthToken
from optout import services
from tests.core.factories import UserFactory
from tests.provenance.factories import AssetFactory, ContributorFactory
artist = UserFactory(username="racer")
operator = UserFactory(username="referee", is_staff=True)
operator.groups.add(Group.objects.get_or_create(name="operators")[0])
works = [AssetFactory() for _ in range(4)]
a, _ = services.optout_create(artist=artist, scope="works", asset_ids=[works[0].pk])
b, _ = services.optout_create(artist=artist, scope="works", asset_ids=[works[1].pk])
print(json.dumps({"artist": AuthToken.objects.create(user=artist)[1],
                  "operator": AuthToken.objects.create(user=operator)[1],
                  "a": a.pk, "b": b.pk, "fresh": works[2].pk, "contributor": ContributorFactory().pk}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env(tmp_path: Path) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "PYTHONPATH": str(ROOT),
           "PROVENANT_DATA_DIR": str(tmp_path)}  # fmt: skip
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    else:  # this test's own database, which a transactional test commits to
        s = connection.settings_dict
        env["DATABASE_URL"] = (
            f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"
        )
    return env


def _manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def live_server_url(tmp_path):
    env = _server_env(tmp_path)
    if connection.vendor == "sqlite":
        _manage(env, "migrate", "-v0")
    seeded = json.loads(_manage(env, "shell", "-c", SEED).strip().splitlines()[-1])
    port, log = _free_port(), tmp_path / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--threads", "6", "--timeout", "60", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/api/optouts/", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url, seeded, env, log
    finally:
        server.terminate()
        server.wait(timeout=30)


def _requests(seeded: dict) -> list[tuple[str, str, str, dict | None, dict]]:
    """(who, method, path, body, headers): 20 writes racing on two opt-outs and two creates."""
    a, b = seeded["a"], seeded["b"]
    same_key = {"Idempotency-Key": "race-1"}
    fresh = {"scope": "works", "asset_ids": [seeded["fresh"]]}
    contributor = {"scope": "contributor", "contributor_id": seeded["contributor"]}
    plan = (
        [("operator", "POST", f"/api/optouts/{a}/approve/", {}, {})] * 4
        + [("artist", "POST", f"/api/optouts/{a}/revoke/", None, {})] * 3
        + [("operator", "POST", f"/api/optouts/{b}/approve/", {}, {})] * 3
        + [("operator", "POST", f"/api/optouts/{b}/reject/", {}, {})] * 2
        + [("artist", "POST", "/api/optouts/", fresh, same_key)] * 4
        + [("artist", "POST", "/api/optouts/", contributor, {})] * 4
    )
    assert len(plan) == 20
    return plan


def test_twenty_concurrent_writes_on_the_same_optouts_never_answer_5xx(transactional_db, live_server_url):
    url, seeded, env, log = live_server_url
    plan = _requests(seeded)
    start = threading.Barrier(len(plan))

    def send(request):
        who, method, path, body, headers = request
        auth = {"Authorization": f"Token {seeded[who]}", **headers}
        with httpx.Client(base_url=url, timeout=60) as client:
            start.wait()
            response = client.request(method, path, json=body, headers=auth)
        return path, response.status_code, response.text[:300]

    with ThreadPoolExecutor(len(plan)) as pool:
        results = list(pool.map(send, plan))
    errors = [r for r in results if r[1] >= 500]
    assert errors == [], (errors, log.read_text()[-4000:])
    assert all(code in (200, 201, 409) for _, code, _ in results), results

    api = httpx.Client(base_url=url, headers={"Authorization": f"Token {seeded['artist']}"}, timeout=30)
    mine = api.get("/api/optouts/").json()["results"]
    assert sum(1 for o in mine if o["scope"] == "contributor") == 1  # four identical creates made one
    assert sum(1 for o in mine if seeded["fresh"] in o["asset_ids"]) == 1  # one Idempotency-Key, one opt-out
    for optout in mine:
        history = api.get(f"/api/optouts/{optout['id']}/history/").json()
        steps = [(h["from_status"], h["to_status"]) for h in history]
        assert steps[0] == ("", "pending"), steps
        for (_, before), (after_from, after_to) in zip(steps, steps[1:], strict=False):
            assert after_from == before and after_from in ALLOWED_TRANSITIONS[after_to], steps
        assert optout["status"] == steps[-1][1]
    assert "audit log intact" in _manage(env, "verify_audit")


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks: PostgreSQL (SQLite locks the database)"
)
def test_an_approval_takes_the_audit_chain_before_it_locks_the_optout(transactional_db, artist, operator):
    """Registry writers lock in one order (chain head, opt-out rows, clock). A claim verification appends to the
    audit log and then locks the opt-outs its gate narrows; an approval that locked its opt-out first and the
    chain head last would deadlock with it."""
    from django.db import DatabaseError, connections, transaction

    from optout import audit, services
    from tests.provenance.factories import AssetFactory

    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[AssetFactory().pk])
    held, release, outcome = threading.Event(), threading.Event(), {}

    def in_thread(body):
        def run():
            try:
                body()
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def hold_the_chain():
        with transaction.atomic():
            audit.hold_chain()
            held.set()
            release.wait(20)

    def approve():
        held.wait(20)
        services.optout_approve(optout=optout, operator=operator)

    def probe_the_optout_row():
        try:
            with transaction.atomic():
                type(optout).objects.select_for_update(nowait=True).get(pk=optout.pk)
            outcome["row"] = "free"
        except DatabaseError:
            outcome["row"] = "locked"

    holder, approver = in_thread(hold_the_chain), in_thread(approve)
    held.wait(20)
    time.sleep(0.5)  # the approval is now waiting on whatever lock it reached first
    in_thread(probe_the_optout_row).join(20)
    release.set()
    holder.join(20), approver.join(20)
    optout.refresh_from_db()
    assert outcome["row"] == "free" and optout.status == "active"
