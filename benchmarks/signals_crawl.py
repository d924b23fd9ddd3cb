"""Signals crawl throughput: N hosts served by a local server with realistic latency (50-300 ms per response),
crawled at the default concurrency (FETCH_CONCURRENCY requests in flight, WEBSIGNALS_HOSTS_IN_FLIGHT hosts at
once, one request per FETCH_HOST_INTERVAL_S per host). Prints hosts/s, peak RSS and the smallest gap the server
saw between two requests to one host (the per-host rate limit must hold), with the load average before and after:
the machine may be shared, so read the figures with it.

    python benchmarks/signals_crawl.py --hosts 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")

ROBOTS = b"User-agent: CCBot\nDisallow: /private/\n\nUser-agent: *\nAllow: /\n"


def serve(port_out, stats_path: str, seed: int) -> None:
    """An asyncio HTTP/1.1 server (keep-alive) answering for any Host: robots.txt on every third host, 404
    otherwise; each response after a random 50-300 ms. Writes {host: [request times]} when told to stop."""
    rng = random.Random(seed)
    seen: dict[str, list[float]] = {}

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                host = next(
                    (h.split(":", 1)[1].strip() for h in lines[1:] if h.lower().startswith("host:")), ""
                )
                if path == "/__stop":
                    Path(stats_path).write_text(json.dumps(seen))
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    asyncio.get_running_loop().stop()
                    return
                seen.setdefault(host, []).append(time.monotonic())
                await asyncio.sleep(rng.uniform(0.05, 0.30))
                found = path == "/robots.txt" and hash(host) % 3 == 0
                body = ROBOTS if found else b"not found"
                status = b"200 OK" if found else b"404 Not Found"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        port_out.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(main())
    except RuntimeError:
        pass  # the loop was stopped by /__stop


def resolve(host: str) -> list[str]:
    return ["127.0.0.1"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.utils import timezone

    from websignals.crawl import crawl_hosts

    stats_path = f"/tmp/signals-crawl-{os.getpid()}.json"
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=serve, args=(send, stats_path, args.seed), daemon=True)
    server.start()
    port = receive.recv()
    settings.FETCH_EXTRA_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.FETCH_PORT_MAP = {"http": port, "https": port}
    settings.FETCH_RESOLVER = "benchmarks.signals_crawl.resolve"
    hosts = {f"site{i:06d}.bench.test": {"scheme": "http", "urls": []} for i in range(args.hosts)}
    load_before = os.getloadavg()
    start = time.perf_counter()
    results = asyncio.run(
        crawl_hosts(hosts, {}, now=timezone.now(), max_age=timedelta(days=7),
                    in_flight=settings.WEBSIGNALS_HOSTS_IN_FLIGHT)
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    load_after = os.getloadavg()
    import httpx

    httpx.get(f"http://127.0.0.1:{port}/__stop", timeout=10)
    server.join(timeout=10)
    seen = json.loads(Path(stats_path).read_text())
    Path(stats_path).unlink()
    gaps = [b - a for times in seen.values() for a, b in zip(sorted(times), sorted(times)[1:], strict=False)]
    rows = [r for result in results for r in result.rows]
    outcomes = {o: sum(r["outcome"] == o for r in rows) for o in sorted({r["outcome"] for r in rows})}
    print(f"hosts {len(results):,}  documents {len(rows):,}  outcomes {outcomes}")
    print(f"settings: FETCH_CONCURRENCY={settings.FETCH_CONCURRENCY} "
          f"WEBSIGNALS_HOSTS_IN_FLIGHT={settings.WEBSIGNALS_HOSTS_IN_FLIGHT} "
          f"FETCH_HOST_INTERVAL_S={settings.FETCH_HOST_INTERVAL_S}")  # fmt: skip
    print(
        f"elapsed {elapsed:.1f} s  ->  {len(results) / elapsed:.1f} hosts/s, {len(rows) / elapsed:.1f} requests/s"
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (crawler process)")
    print(f"per-host gap between requests: min {min(gaps):.3f} s over {len(gaps):,} pairs "
          f"(limit {settings.FETCH_HOST_INTERVAL_S:.3f} s) -> {'holds' if min(gaps) >= settings.FETCH_HOST_INTERVAL_S * 0.95 else 'VIOLATED'}")  # fmt: skip
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} "
          f"({os.cpu_count()} CPUs, shared with other work)")  # fmt: skip


if __name__ == "__main__":
    main()
