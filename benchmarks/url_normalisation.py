"""URL normalisation throughput: the vectorised keys of the manifest pipeline (core.urlkeys.url_keys) and the
reference (core.urlnorm.normalize_url) one URL at a time, on URLs shaped like a crawl's manifest.

    PYTHONPATH=. python benchmarks/url_normalisation.py --rows 1000000

Most URLs take the vectorised path; `--odd-share` of them (non-ASCII or spaced paths, ports, long queries, IDNA
hosts, user info) fall back to the reference. Prints one table row per function.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pyarrow as pa

ODD = [
    "https://www.example{i}.org/images/café-{i}.jpg",
    "http://cdn.example{i}.com/a photo {i}.png",
    "https://img.example{i}.net:8443/x/{i}.webp",
    "https://example{i}.com/p.jpg?w=1&h=2&q=90&fm=jpg",
    "http://bücher{i}.de/bild-{i}.jpg",
    "http://user@example{i}.com/{i}.jpg",
]


def make_urls(rows: int, odd_share: float, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    subs = np.array(["", "www.", "cdn.", "img.", "images.", "WWW.", "static."])
    tlds = np.array(["com", "org", "net", "co.uk", "de", "io", "jp"])
    exts = np.array([".jpg", ".JPG", ".png", ".webp", ".jpeg/"])
    sub, tld, ext = (
        rng.integers(0, len(subs), rows),
        rng.integers(0, len(tlds), rows),
        rng.integers(0, 5, rows),
    )
    year, site, odd = rng.integers(2010, 2025, rows), rng.integers(0, 50_000, rows), rng.random(rows)
    query = rng.random(rows) < 0.03
    urls = []
    for i in range(rows):
        if odd[i] < odd_share:
            urls.append(ODD[i % len(ODD)].format(i=i))
            continue
        scheme = "https://" if i % 5 else "http://"
        q = "?w=512&h=512" if query[i] else ""
        urls.append(
            f"{scheme}{subs[sub[i]]}site{site[i]}.{tlds[tld[i]]}/images/{year[i]}/work-{i}{exts[ext[i]]}{q}"
        )
    return urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--odd-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    from core.urlkeys import url_keys
    from core.urlnorm import normalize_url

    urls = make_urls(args.rows, args.odd_share, args.seed)
    array = pa.array(urls, pa.string())
    print(f"load before: {os.getloadavg()}")
    print(f"{'function':<34}{'rows':>10}{'seconds':>10}{'rows/s':>14}")
    start = time.perf_counter()
    url_keys(array)
    elapsed = time.perf_counter() - start
    print(
        f"{'url_keys (vectorised, manifests)':<34}{args.rows:>10,}{elapsed:>10.2f}{args.rows / elapsed:>14,.0f}"
    )
    start = time.perf_counter()
    for url in urls:
        normalize_url(url)
    elapsed = time.perf_counter() - start
    print(
        f"{'normalize_url (one at a time)':<34}{args.rows:>10,}{elapsed:>10.2f}{args.rows / elapsed:>14,.0f}"
    )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
