"""Fetching one batch of hosts: each host's robots.txt, ai.txt and tdmrep.json (and, when asked, each work's
response headers), conditional on what was fetched before, skipping what is younger than max-age. No database:
the service passes in the previous evidence and stores what comes back."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.fetch import Fetcher, FetchResult, Outcome
from websignals.evidence import DOCUMENT_PATHS, header_lines, judge

HEAD_FALLBACK = {405, 501}  # servers that refuse HEAD: ask for the first bytes instead
RANGE = "bytes=0-16383"  # enough for a page's <head> and its TDMRep meta


@dataclass(frozen=True)
class Previous:
    """The latest earlier evidence of one (document, url)."""

    fetched_at: datetime
    outcome: str
    body: str = ""
    etag: str = ""
    last_modified: str = ""

    @property
    def settled(self) -> bool:
        return self.outcome in ("document", "absent")


@dataclass
class HostResult:
    host: str
    rows: list[dict] = field(default_factory=list)
    fresh: bool = False
    unreachable: bool = False
    fetches: int = 0


def _decode(body: bytes) -> str:
    return body.decode("utf-8-sig", errors="replace").replace("\x00", "")


def _outcome(result: FetchResult) -> str:
    if result.outcome != Outcome.FETCHED:
        return result.outcome
    status = result.status or 0
    if 200 <= status < 300 or status == 304:
        return "document"
    if 400 <= status < 500:
        return "absent"
    return "error"


def evidence_row(host: str, document: str, result: FetchResult, now: datetime, prev: Previous | None) -> dict:
    outcome = _outcome(result)
    if result.status == 304 and prev is not None and prev.outcome == "document":
        body = prev.body  # not modified: the body fetched before, confirmed now
    elif document == "headers":
        content_type = result.headers.get("content-type", "")
        body = header_lines(result.headers, result.body, content_type) if outcome == "document" else ""
    else:
        body = _decode(result.body) if outcome == "document" else ""
    if result.truncated and "\n" in body:
        body = body.rsplit("\n", 1)[0]  # the cap may cut the last line in half: never judge half a rule
    row = {
        "host": host, "document": document, "url": result.url, "outcome": outcome,
        "http_status": result.status, "fetched_at": now, "body": body,
        "body_sha256": hashlib.sha256(body.encode()).hexdigest() if outcome == "document" else "",
        "truncated": result.truncated, "etag": result.headers.get("etag", "")[:500],
        "last_modified": result.headers.get("last-modified", "")[:100], "reason": result.reason[:500],
    }  # fmt: skip
    return {**row, **decision_fields(row)}


def decision_fields(row: dict) -> dict:
    """The decision recorded with the evidence: for the site's root (or the work's own URL, for headers)."""
    if row["outcome"] != "document":
        return {"allowed": None, "rule": ""}
    target = row["url"] if row["document"] == "headers" else f"http://{row['host']}/"
    found = judge([_Row(row["document"], row["url"], row["body"])], target)
    if found is None:
        return {"allowed": True, "rule": ""}
    return {"allowed": False, "rule": found[0].reason[:500]}


@dataclass(frozen=True)
class _Row:
    document: str
    url: str
    body: str


def _conditional(prev: Previous | None) -> dict[str, str]:
    if prev is None or prev.outcome != "document":
        return {}
    headers = {}
    if prev.etag:
        headers["If-None-Match"] = prev.etag
    if prev.last_modified:
        headers["If-Modified-Since"] = prev.last_modified
    return headers


async def crawl_host(
    fetcher: Fetcher,
    host: str,
    spec: dict,
    previous: dict[tuple[str, str], Previous],
    *,
    now: datetime,
    max_age: timedelta,
) -> HostResult:
    out = HostResult(host)
    scheme = spec.get("scheme", "https")
    wanted = [(doc, f"{scheme}://{host}{path}") for doc, path in DOCUMENT_PATHS.items()]
    wanted += [("headers", url) for url in spec.get("urls", [])]
    todo = []
    for document, url in wanted:
        prev = previous.get((document, "" if document != "headers" else url))
        if prev is not None and prev.settled and now - prev.fetched_at < max_age:
            continue
        todo.append((document, url, prev))
    out.fresh = not todo
    for document, url, prev in todo:
        if out.unreachable:
            # the host did not answer: record the rest as not reached instead of waiting for each deadline
            result = FetchResult(url=url, outcome=Outcome.UNREACHABLE, reason="the host did not answer")
        else:
            result = await _fetch(fetcher, document, url, _conditional(prev))
            out.fetches += 1
            out.unreachable = result.outcome == Outcome.UNREACHABLE
        out.rows.append(evidence_row(host, document, result, now, prev))
    await fetcher.release(host)
    return out


async def _fetch(fetcher: Fetcher, document: str, url: str, conditional: dict[str, str]) -> FetchResult:
    if document != "headers":
        return await fetcher.fetch(url, headers=conditional)
    result = await fetcher.fetch(url, method="HEAD", headers=conditional)
    if result.outcome == Outcome.FETCHED and result.status in HEAD_FALLBACK:
        result = await fetcher.fetch(url, headers={**conditional, "Range": RANGE}, max_bytes=16384)
    return result


async def crawl_hosts(
    hosts: dict[str, dict],
    previous: dict[str, dict[tuple[str, str], Previous]],
    *,
    now: datetime,
    max_age: timedelta,
    in_flight: int,
    fetcher: Fetcher | None = None,
    on_host=None,
) -> list[HostResult]:
    """Every host of a batch, `in_flight` hosts at a time (each mostly waits for its own rate limit)."""
    fetcher = fetcher or Fetcher()
    gate = asyncio.Semaphore(in_flight)

    async def one(host: str) -> HostResult:
        async with gate:
            result = await crawl_host(
                fetcher, host, hosts[host], previous.get(host, {}), now=now, max_age=max_age
            )
        if on_host is not None:
            on_host(result)
        return result

    return list(await asyncio.gather(*(one(host) for host in sorted(hosts))))
