"""Judging a URL by the evidence fetched about its site: which documents apply, in which order, and the
signals each yields. Pure: evidence rows are anything with `document`, `url`, `body` (model rows or snapshots).

Precedence: every signal that reserves the rights denies, whichever else allows (a `tdm-reservation: 0` header
does not undo an ai.txt Disallow: the strictest statement of the rights holder wins). When several deny, the
most specific is reported: the work's own response headers and HTML meta, then tdmrep.json, ai.txt, robots.txt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from websignals.rules import WEB_RULES, Decision

DOCUMENT_PATHS = {"robots_txt": "/robots.txt", "ai_txt": "/ai.txt", "tdmrep": "/.well-known/tdmrep.json"}
PRECEDENCE = ("headers", "tdmrep", "ai_txt", "robots_txt")
# response headers kept as evidence: X-Robots-Tag and TDMRep's two headers
KEPT_HEADERS = ("x-robots-tag", "tdm-reservation", "tdm-policy")
_META = re.compile(
    r"""<meta\s[^>]*name\s*=\s*["']?(tdm-reservation|tdm-policy)["']?[^>]*content\s*=\s*["']([^"']*)["']""",
    re.IGNORECASE,
)


class EvidenceLike(Protocol):
    # read-only members: a frozen dataclass or a model row satisfies them
    @property
    def document(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def body(self) -> str: ...


Evidence = TypeVar("Evidence", bound=EvidenceLike)


@dataclass(frozen=True)
class WebSignal:
    kind: str
    value: str
    location: str


def header_lines(headers: dict[str, str], body: bytes = b"", content_type: str = "") -> str:
    """The evidence text of a work's response: `name: value` lines for the kept headers, and TDMRep's HTML meta
    (`meta tdm-reservation: 1`) when the response is a page."""
    lines = [
        f"{name}: {value}" for name in KEPT_HEADERS for value in headers.get(name, "").split("\n") if value
    ]
    if "html" in content_type.lower():
        text = body.decode("utf-8", errors="replace")
        lines += [f"meta {name.lower()}: {value}" for name, value in _META.findall(text)]
    return "\n".join(lines)


def signals_of(row: EvidenceLike) -> list[WebSignal]:
    if row.document != "headers":
        return [WebSignal(row.document, row.body, row.url)]
    signals, policy = [], ""
    for line in row.body.splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() in ("tdm-policy", "meta tdm-policy"):
            policy = value.strip()
    for line in row.body.splitlines():
        name, _, value = (part.strip() for part in line.partition(":"))
        where = "HTML meta" if name.startswith("meta ") else "header"
        if name.lower() == "x-robots-tag":
            signals.append(WebSignal("x_robots_tag", value, f"X-Robots-Tag header of {row.url}"))
        elif name.lower().endswith("tdm-reservation"):
            suffix = f" (tdm-policy {policy})" if policy else ""
            signals.append(WebSignal("tdmrep", value, f"tdm-reservation {where} of {row.url}{suffix}"))
    return signals


def judge(rows: Iterable[Evidence], url: str) -> tuple[Decision, Evidence] | None:
    """The first denial for `url` (in PRECEDENCE order) and the evidence row it came from; None if none denies.
    Header rows apply only to the URL they were fetched for (the caller passes only those)."""
    by_document: dict[str, list[Evidence]] = {}
    for row in rows:
        by_document.setdefault(row.document, []).append(row)
    for document in PRECEDENCE:
        for row in by_document.get(document, []):
            for signal in signals_of(row):
                decision = WEB_RULES[signal.kind](signal, url)
                if not decision.allowed:
                    return _named(decision, signal), row
    return None


def _named(decision: Decision, signal: WebSignal) -> Decision:
    """A header denial names the header as sent (`X-Robots-Tag: noimageai`, `tdm-reservation header: 1`)."""
    if signal.kind == "x_robots_tag":
        reason = f"X-Robots-Tag: {signal.value}"
    elif signal.location.startswith("tdm-reservation "):
        where, _, policy = signal.location.partition(" (")
        reason = f"{where.rsplit(' of ', 1)[0]}: {signal.value}" + (f" ({policy}" if policy else "")
    else:
        return decision
    return Decision(False, decision.rule, reason, decision.signal, signal.location)
