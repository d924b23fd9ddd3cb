"""Benchmark POST /api/check/: 10,000 mixed items (sha256 / URL / pHash) against a registry of ~100k active
opted-out keys in PostgreSQL, through the whole Django + DRF stack (test client: middleware, auth, throttle,
parsing, rendering), plus the opt-out-to-gone latency (activation committed -> next check denies).

    DATABASE_URL=postgres://... .venv/bin/python benchmarks/check_api.py [--keys 100000] [--calls 30]

The calls against an unchanging registry are the best case: a change that publishes keys (an approval) makes every
web process bring the keys it holds up to date, so the benchmark also times calls with a state change committed
before every N-th call (--change-every 1,10,100; at least 6 N calls), reporting the first call after each approval
on its own.

Uses its own scratch database (`<name>_bench_check`, kept between runs unless --fresh).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")


def setup_database(fresh: bool) -> None:
    import django
    from django.conf import settings

    django.setup()
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        sys.exit("set DATABASE_URL to a PostgreSQL database: the benchmark is about PostgreSQL lookups")
    from django.db import connection

    test = connection.settings_dict.setdefault("TEST", {})
    test.update({"NAME": connection.settings_dict["NAME"] + "_bench_check"})
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=not fresh)


def rand_sha(rng: random.Random) -> str:
    return hashlib.sha256(rng.randbytes(16)).hexdigest()


def rand_phash(rng: random.Random) -> int:
    return int.from_bytes(rng.randbytes(8), "big", signed=True)


def populate(keys: int, seed: int = 7) -> dict:
    """~keys active keys in 1 per 100 opt-outs: a third sha256, a third URL, a third pHash, plus domains."""
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from optout.models import OptOut, OptOutKey, OptOutStateChange

    rng = random.Random(seed)
    if OptOutKey.objects.filter(active=True).count() >= keys:
        sample = list(
            OptOutKey.objects.filter(active=True).order_by("id").values_list("kind", "key")[::37]
        )  # a step prime to 3: every kind
        return {"sample": sample}
    OptOutKey.objects.all().delete()
    OptOutStateChange.objects.all().delete()
    OptOut.objects.all().delete()
    user, _ = get_user_model().objects.get_or_create(username="bench-artist")
    per = 100
    now = timezone.now()
    with transaction.atomic():
        optouts = OptOut.objects.bulk_create(
            [OptOut(artist=user, scope="works", status="active") for _ in range(keys // per)]
        )
        OptOutStateChange.objects.bulk_create(
            [OptOutStateChange(optout=o, from_status="pending", to_status="active", at=now) for o in optouts]
        )
        rows = []
        for i in range(keys):
            optout = optouts[i // per]
            kind = ("sha256", "url", "phash")[i % 3]
            if kind == "sha256":
                rows.append(OptOutKey(optout=optout, kind=kind, key=rand_sha(rng), active=True))
            elif kind == "url":
                url = f"site{rng.randrange(5000)}.example/{rng.randrange(10**9)}/image.jpg"
                rows.append(OptOutKey(optout=optout, kind=kind, key=url, active=True))
            else:
                value = rand_phash(rng)
                rows.append(OptOutKey(optout=optout, kind=kind, key=str(value), phash=value, active=True))
        for d in range(300):
            rows.append(OptOutKey(optout=optouts[d], kind="domain", key=f"blocked{d}.example", active=True))
        OptOutKey.objects.bulk_create(rows, batch_size=10_000)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE optout_optoutkey")
    sample = [(r.kind, r.key) for r in rows[::37]]  # a step prime to 3: every kind
    return {"sample": sample}


def flip_bit(phash: int, bit: int) -> int:
    from provenance.hashing import int64_to_unsigned, unsigned_to_int64

    return unsigned_to_int64(int64_to_unsigned(phash) ^ (1 << bit))


def make_items(sample: list[tuple[str, str]], n: int, hit_rate: float, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        kind = ("sha256", "url", "phash")[i % 3]
        hit = [s for s in sample if s[0] == kind] if rng.random() < hit_rate else []
        if kind == "sha256":
            items.append({"sha256": rng.choice(hit)[1] if hit else rand_sha(rng), "key": str(i)})
        elif kind == "url":
            url = (
                "https://" + rng.choice(hit)[1]
                if hit
                else f"https://free{rng.randrange(9999)}.example/{i}.png"
            )
            items.append({"url": url, "key": str(i)})
        else:
            value = flip_bit(int(rng.choice(hit)[1]), rng.randrange(64)) if hit else rand_phash(rng)
            items.append({"phash": value, "key": str(i)})
    return items


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure_calls(client, body: bytes, calls: int) -> tuple[list[float], dict]:
    timings, last = [], None
    for _ in range(calls):
        started = time.perf_counter()
        response = client.post("/api/check/", body, content_type="application/json")
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content[:300]
        last = response
    import orjson

    return timings, orjson.loads(last.content)


class StateChanges:
    """Opt-out state changes as the site makes them, alternating: an artist's new request for a fresh work (pending:
    no key published, but a state change) and an operator's approval of the oldest pending one (its keys
    published). Each is committed before the next check call, so every web process sees it."""

    def __init__(self) -> None:
        from django.contrib.auth import get_user_model

        from provenance.models import Collection

        self.artist = get_user_model().objects.get(username="bench-artist")
        self.operator = get_user_model().objects.get_or_create(username="bench-operator", is_superuser=True)[
            0
        ]
        self.collection = Collection.objects.get_or_create(name="bench")[0]
        self.rng = random.Random(time.time_ns())
        self.pending: list = []
        self.made = 0

    def make(self) -> bool:
        """One change; True if it was an approval (a change that publishes keys)."""
        from optout import services

        approval = bool(self.made % 2 and self.pending)
        if approval:
            services.optout_approve(optout=self.pending.pop(0), operator=self.operator)
        else:
            optout, _ = services.optout_create(
                artist=self.artist, scope="works", asset_ids=[self.fresh_asset().pk]
            )
            self.pending.append(optout)
        self.made += 1
        return approval

    def fresh_asset(self):
        from provenance.models import Asset

        return Asset.objects.create(
            collection=self.collection,
            source=f"bench/{self.rng.randrange(10**12)}.png",
            sha256=rand_sha(self.rng),
            phash=rand_phash(self.rng),
        )


def measure_with_changes(client, body: bytes, calls: int, every: int) -> tuple[list[float], list[float]]:
    """(every call's time, the times of the calls that came first after an approval): a state change is committed
    before call 0, every, 2 every, ..."""
    changes = StateChanges()
    timings, after_approval = [], []
    for i in range(calls):
        approved = changes.make() if i % every == 0 else False
        (elapsed,), _ = measure_calls(client, body, 1)
        timings.append(elapsed)
        if approved:
            after_approval.append(elapsed)
    return timings, after_approval


def measure_optout_to_gone(client, rounds: int = 5) -> list[float]:
    """Activate a new opt-out of a fresh work (commit), then poll the check API until it denies."""
    import orjson

    from optout import services

    changes = StateChanges()
    out = []
    for _ in range(rounds):
        asset = changes.fresh_asset()
        body = orjson.dumps({"items": [{"phash": asset.phash}]})
        optout, _ = services.optout_create(artist=changes.artist, scope="works", asset_ids=[asset.pk])
        started = time.perf_counter()
        services.optout_approve(optout=optout, operator=changes.operator)
        while (
            orjson.loads(client.post("/api/check/", body, content_type="application/json").content)["denied"]
            != 1
        ):
            pass
        out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--hit-rate", type=float, default=0.1)
    parser.add_argument("--fresh", action="store_true", help="drop and rebuild the scratch database")
    parser.add_argument(
        "--change-every",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 10, 100],
        help="N: a state change committed before every N-th call (comma-separated)",
    )
    args = parser.parse_args()

    setup_database(args.fresh)
    from django.conf import settings

    from core.startup import settle_web_process

    settle_web_process()  # what config.wsgi does in every web process

    settings.PROVENANT_THROTTLE_ENABLED = False
    import orjson
    from django.contrib.auth import get_user_model
    from knox.models import AuthToken
    from rest_framework.test import APIClient

    started = time.perf_counter()
    registry = populate(args.keys)
    print(f"registry: {args.keys:,} active keys ready in {time.perf_counter() - started:.1f} s")
    user, _ = get_user_model().objects.get_or_create(username="bench-pipeline")
    _row, token = AuthToken.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = orjson.dumps({"items": make_items(registry["sample"], args.items, args.hit_rate)})

    first, _ = measure_calls(client, body, 1)  # includes building the pHash index
    timings, answer = measure_calls(client, body, args.calls)
    print(f"POST /api/check/, {args.items:,} items ({len(body) / 1e6:.2f} MB), {answer['denied']:,} denied")
    print("| calls | first call (cold pHash index) ms | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    print(f"| {args.calls} | {first[0]:.0f} | {statistics.median(timings):.0f} | "
          f"{percentile(timings, 0.95):.0f} | {max(timings):.0f} |")  # fmt: skip
    print(
        "\nWith opt-out state changes interleaved (a new pending request and an approval in turn, one per N calls):"
    )
    print(
        "| change every N calls | calls | p50 ms | p95 ms | max ms | first call after an approval: median / max ms |"
    )
    print("|---|---|---|---|---|---|")
    for every in args.change_every:
        timings, after = measure_with_changes(client, body, max(args.calls, 6 * every), every)
        print(f"| {every} | {len(timings)} | {statistics.median(timings):.0f} | {percentile(timings, 0.95):.0f} | "
              f"{max(timings):.0f} | {statistics.median(after):.0f} / {max(after):.0f} |")  # fmt: skip
    gone = measure_optout_to_gone(client)
    print(f"opt-out-to-gone (approve committed -> check denies), {len(gone)} rounds: "
          f"median {statistics.median(gone):.0f} ms, max {max(gone):.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
