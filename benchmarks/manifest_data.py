"""Data for the manifest build benchmark (benchmarks/manifest_build.py): a synthetic img2dataset manifest in 1M-row
Parquet files (Zipf-distributed domains with subdomains, mixed URL spellings, Zipf-worded captions, sha256, pHash),
an opt-out list of normalised keys across the rule kinds (url, domain, sha256, phash, asset) as Parquet, and the
same list loaded into the product's database through its models."""

from __future__ import annotations

import os
from pathlib import Path

FILE_ROWS = 1_000_000
ROW_GROUP = 131_072
# the opt-outs are active from ACTIVE_SINCE; every build runs with the cut-off AS_OF
ACTIVE_SINCE = "2026-01-01T00:00:00+00:00"
AS_OF = "2030-01-01T00:00:00+00:00"
OPTOUTS = 50_000


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
    ids = [str(i % OPTOUTS) for i in range(n)]
    table = pa.table({**rows, "reason": ["artist opt-out"] * n, "rule": rows["kind"], "optout_id": ids})
    pq.write_table(table, folder / "registry.parquet")


# --- the registry in the product's database ----------------------------------------------------------------------
def load_registry(folder: Path) -> int:
    """Load folder/registry.parquet through the models (bulk_create), once per database: a user, OPTOUTS opt-outs
    active since ACTIVE_SINCE with their state history, and one OptOutKey per registry row. Runs with Django set
    up on the target database (DATABASE_URL); returns the number of keys."""
    import pyarrow.parquet as pq
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils.dateparse import parse_datetime

    from optout.models import OptOut, OptOutKey, OptOutStateChange

    call_command("migrate", verbosity=0)
    table = pq.read_table(folder / "registry.parquet")
    loaded = OptOutKey.objects.count()
    if loaded == table.num_rows:
        return loaded
    if loaded:
        raise SystemExit(f"the database holds {loaded} keys, not {table.num_rows}: drop it and run again")
    artist = get_user_model().objects.create(username="bench-artist")
    since = parse_datetime(ACTIVE_SINCE)
    ids = range(1, OPTOUTS + 1)
    OptOut.objects.bulk_create(
        [OptOut(id=i, artist=artist, scope="works", status="active") for i in ids], batch_size=5000
    )
    changes = [
        OptOutStateChange(optout_id=i, from_status="pending", to_status="active", at=since) for i in ids
    ]
    OptOutStateChange.objects.bulk_create(changes, batch_size=5000)
    for batch in table.to_batches(50_000):
        kinds, keys, owners = (batch.column(n).to_pylist() for n in ("kind", "key", "optout_id"))
        OptOutKey.objects.bulk_create(
            [_key(kind, key, int(owner) + 1) for kind, key, owner in zip(kinds, keys, owners, strict=True)],
            batch_size=10_000,
            ignore_conflicts=True,
        )
    return OptOutKey.objects.count()


def _key(kind: str, key: str, optout_id: int):
    from optout.models import OptOutKey

    number = int(key) if kind in ("phash", "asset") else None
    return OptOutKey(
        optout_id=optout_id,
        kind=kind,
        key=key,
        phash=number if kind == "phash" else None,
        asset_id=number if kind == "asset" else None,
        active=True,
    )


def replicate(base: Path, folder: Path, times: int) -> None:
    """folder/manifest: base's Parquet files `times` over (hard links, renumbered), with base's opt-out list: a
    larger input made in seconds instead of generated for an hour. Its rows repeat, which filtering does not
    care about; its registry and databases are base's."""
    parts = sorted((base / "manifest").glob("*.parquet"))
    (folder / "manifest").mkdir(parents=True, exist_ok=True)
    for copy in range(times):
        for index, part in enumerate(parts):
            target = folder / "manifest" / f"part-{copy * len(parts) + index:05d}.parquet"
            if not target.exists():
                os.link(part, target)
    if not (folder / "registry.parquet").exists():
        os.link(base / "registry.parquet", folder / "registry.parquet")
