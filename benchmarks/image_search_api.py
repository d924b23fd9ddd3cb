"""Image search through the API, end to end: upload to JSON, with and without search inside composites.

    DJANGO_SETTINGS_MODULE=config.settings.dev python benchmarks/image_search_api.py --queries 200

The site's WSGI application is served by a real HTTP server on 127.0.0.1 (wsgiref, one request at a time, in a
thread of this process); each query is a multipart POST to /api/search/image/ timed from the first byte sent to
the parsed JSON. Queries are copies of indexed works as artists meet them: half the families of the copy
benchmark (re-encoded, cropped, mirrored, overlaid, a border, a rotation) and half composites (the work small in a
page or chat screenshot, a grid, a collage, a mockup), drawn with one seed. The same queries run with region
search off, then on. Prints p50 / p95 / max per setting and the region detector's own cost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

from tests import composites  # noqa: E402  (the composite makers the region tests use)

EDITS = ["jpeg20", "crop", "mirror", "overlay", "border", "rotate"]


def _serve():
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from config.wsgi import application  # the web process's own start-up (core.startup), as gunicorn loads it

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, application, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _post(url: str, data: bytes) -> tuple[float, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request) as response:
        payload = json.loads(response.read())
    return time.perf_counter() - started, payload


def _queries(count: int, seed: int) -> list[tuple[str, bytes, int]]:
    from benchmarks.copy_detection import _jpeg, transform
    from embeddings.encoders.factory import get_encoder
    from embeddings.search import index
    from provenance.imaging import load_rgb_path
    from provenance.models import Asset

    stored = set(index.stored_ids(get_encoder().space).tolist())
    rows = list(Asset.objects.filter(id__in=stored).order_by("id").values_list("id", "local_path"))
    rng = np.random.default_rng(seed)
    picked = [rows[int(i)] for i in rng.choice(len(rows), size=min(count + 12, len(rows)), replace=False)]
    pictures = composites.photographs() + [load_rgb_path(p, max_side=512).image for _, p in picked[count:]]
    families = EDITS + list(composites.MAKERS)
    out = []
    for n, (asset_id, path) in enumerate(picked[:count]):
        family = families[n % len(families)]
        image, quality = transform(load_rgb_path(path).image, family, rng, pictures[:3], pictures)
        out.append((family, _jpeg(image, quality), asset_id))
    return out


def _run(url: str, queries, regions: bool) -> dict:
    from django.conf import settings

    settings.PROVENANT_SEARCH_REGIONS = regions
    seconds, found = [], 0
    for _, data, asset_id in queries:
        elapsed, payload = _post(url, data)
        seconds.append(elapsed)
        found += any(r["asset_id"] == asset_id for r in payload["results"][:10])
    return {
        "p50_ms": round(float(np.percentile(seconds, 50)) * 1000, 1),
        "p95_ms": round(float(np.percentile(seconds, 95)) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "recall_at_10": round(found / len(queries), 3),
    }


def _detector_cost(queries) -> float:
    from embeddings.search.regions import find_regions
    from provenance.imaging import load_rgb

    seconds = []
    for _, data, _ in queries:
        image = load_rgb(data).image
        started = time.perf_counter()
        find_regions(image)
        seconds.append(time.perf_counter() - started)
    return round(float(np.median(seconds)) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "image_search_api.json"))
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

    settings.PROVENANT_THROTTLE_ENABLED = False  # the benchmark is one client sending hundreds of uploads
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    server = _serve()
    url = f"http://127.0.0.1:{server.server_port}/api/search/image/"
    queries = _queries(args.queries, args.seed)
    _post(url, queries[0][1])  # loads the model and the indexes
    load_before = os.getloadavg()
    results = {"off": _run(url, queries, regions=False), "on": _run(url, queries, regions=True)}
    results["detector_median_ms"] = _detector_cost(queries)
    results["load_before"], results["load_after"] = load_before, os.getloadavg()
    results["queries"] = len(queries)
    server.shutdown()
    lines = [
        f"image search through the API, {len(queries)} queries (half edits, half composites), "
        f"load {load_before[0]:.1f} -> {results['load_after'][0]:.1f}",
        "| region search | p50 ms | p95 ms | max ms | recall@10 |",
        "|---|---|---|---|---|",
    ]
    for key in ("off", "on"):
        r = results[key]
        lines.append(f"| {key} | {r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} | {r['recall_at_10']} |")
    lines.append(f"region detector alone: median {results['detector_median_ms']} ms per query")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
