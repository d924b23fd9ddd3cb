"""What a registry change costs search: the first exclusion lookup after an approval, a revocation and a new work,
against a full reload, on a copy of an ingested collection (the demo's SQLite database by default, so the demo
itself is untouched).

    DJANGO_SETTINGS_MODULE=config.settings.dev .venv/bin/python benchmarks/search_exclusions.py [--works 200]

Another artist's opt-out of --works works stands throughout; one artist opts out --works more works of the
collection (drawn with --seed) and revokes them, --rounds times; every search in every web process reads
`optout.exclusions.active_optout_owners()` first, so its time after a change is added to the next search.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")


def _copy_database(source: Path) -> Path:
    target = Path(tempfile.mkdtemp(prefix="bench-exclusions-")) / "db.sqlite3"
    shutil.copy(source, target)
    os.environ["DATABASE_URL"] = f"sqlite:///{target}"
    return target


def _pad(total: int, rng: random.Random) -> None:
    """Works unlike the real ones (random pHashes, their own hosts): they cost a reload its pass over the
    collection without matching anything."""
    from provenance.models import Asset, Collection

    missing = total - Asset.objects.count()
    if missing <= 0:
        return
    collection = Collection.objects.get_or_create(name="bench-padding")[0]
    Asset.objects.bulk_create(
        [
            Asset(
                collection=collection, source=f"pad/{n}.png", domain=f"pad{n % 997}.example",
                url=f"https://pad{n % 997}.example/{n}.png", sha256=f"{rng.getrandbits(256):064x}",
                phash=rng.getrandbits(64) - (1 << 63),
            )
            for n in range(missing)
        ],
        batch_size=5000,
    )  # fmt: skip


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default="var/provenant.sqlite3", help="SQLite file to copy")
    parser.add_argument("--works", type=int, default=200, help="works in the opt-out")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pad", type=int, default=0, help="add works (random hashes, other hosts) up to this many"
    )
    args = parser.parse_args()
    copy = _copy_database(Path(args.database))

    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from optout import exclusions, services
    from provenance.models import Asset, Collection

    artist = get_user_model().objects.get_or_create(username="bench-exclusions-artist")[0]
    operator = get_user_model().objects.get_or_create(username="bench-exclusions-op", is_superuser=True)[0]
    rng = random.Random(args.seed)
    _pad(args.pad, rng)
    ids = list(Asset.objects.order_by("pk").values_list("pk", flat=True))
    standing = get_user_model().objects.get_or_create(username="bench-exclusions-standing")[0]
    optout, _ = services.optout_create(artist=standing, scope="works", asset_ids=rng.sample(ids, args.works))
    services.optout_approve(
        optout=optout, operator=operator
    )  # the registry is not empty: reloads match every work
    rows: dict[str, list[float]] = {"full reload": [], "approval": [], "revocation": [], "a new work": []}
    for _ in range(args.rounds):
        exclusions.forget()
        rows["full reload"].append(_timed(exclusions.active_optout_owners))
        optout, _ = services.optout_create(
            artist=artist, scope="works", asset_ids=rng.sample(ids, args.works)
        )
        services.optout_approve(optout=optout, operator=operator)
        rows["approval"].append(_timed(exclusions.active_optout_owners))
        hidden = len(exclusions.active_optout_owners())
        services.optout_revoke(optout=optout, artist=artist)
        rows["revocation"].append(_timed(exclusions.active_optout_owners))
        Asset.objects.create(collection=Collection.objects.first(), source=f"bench/{rng.random()}.png")
        rows["a new work"].append(_timed(exclusions.active_optout_owners))
    load = os.getloadavg()
    print(f"{len(ids):,} works, an opt-out of {args.works} ({hidden} hidden with their near copies), "
          f"{args.rounds} rounds, load {load[0]:.1f}")  # fmt: skip
    print("| first lookup after | median ms | max ms |\n|---|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values):.0f} | {max(values):.0f} |")
    shutil.rmtree(copy.parent)


if __name__ == "__main__":
    main()
