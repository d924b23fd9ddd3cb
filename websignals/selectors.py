"""Reading the evidence: what is in force for a site at an instant, and the decision for a URL.

The one definition of "does this URL's site opt out", used by the check API, search results and manifest builds
(which freeze it at their cut-off)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from core.urlnorm import normalize_url
from websignals.evidence import judge
from websignals.models import SiteEvidence
from websignals.sources import site_of

SETTLED = (SiteEvidence.Outcome.DOCUMENT, SiteEvidence.Outcome.ABSENT)


@dataclass(frozen=True)
class SiteDecision:
    allowed: bool
    rule: str  # robots-txt | ai-txt | tdmrep | x-robots-tag
    reason: str  # the line that decided: `robots.txt CCBot Disallow: /`
    evidence_url: str
    evidence_at: datetime


def evidence_in_force(
    hosts: Iterable[str], *, as_of: datetime | None = None
) -> dict[str, list[SiteEvidence]]:
    """{host: the latest settled row per document (and per URL, for headers) fetched at or before `as_of`}.
    A server error or no answer leaves the earlier evidence in force; a 4xx means no such document."""
    rows = SiteEvidence.objects.filter(host__in=set(hosts), outcome__in=SETTLED)
    if as_of is not None:
        rows = rows.filter(fetched_at__lte=as_of)
    # the latest row per (host, document, url) first, without bodies: older versions of a file are never loaded
    latest: dict[tuple[str, str, str], tuple[int, str]] = {}
    fields = ("id", "host", "document", "url", "outcome")
    ordered = rows.order_by("host", "document", "url", "-fetched_at", "-id").values_list(*fields)
    for row_id, host, document, url, outcome in ordered.iterator(chunk_size=5000):
        key = (host, document, url if document == SiteEvidence.Document.HEADERS else "")
        latest.setdefault(key, (row_id, outcome))
    wanted = [row_id for row_id, outcome in latest.values() if outcome == SiteEvidence.Outcome.DOCUMENT]
    found: dict[str, list[SiteEvidence]] = {}
    for start in range(0, len(wanted), 500):
        for row in SiteEvidence.objects.filter(id__in=wanted[start : start + 500]).order_by("id"):
            found.setdefault(row.host, []).append(row)
    return found


def hosts_with_evidence(*, as_of: datetime | None = None) -> set[str]:
    """Hosts with any document fetched at or before `as_of`: the only hosts a URL decision can deny."""
    rows = SiteEvidence.objects.filter(outcome=SiteEvidence.Outcome.DOCUMENT)
    if as_of is not None:
        rows = rows.filter(fetched_at__lte=as_of)
    return set(rows.values_list("host", flat=True).distinct())


_known_lock = threading.Lock()
_known: dict[str, object] = {"version": None, "hosts": frozenset()}


def _hosts_known_now() -> frozenset[str]:
    """Hosts with evidence, held in memory until a row is added or removed (the version, read on every call, is
    the newest id and fetch time: an id alone can come back after a delete or a rolled-back transaction): most
    URLs a check or a search sees have no evidence and cost a set lookup."""
    version = tuple(SiteEvidence.objects.aggregate(Max("id"), Max("fetched_at"), Count("id")).values())
    with _known_lock:
        if _known["version"] != version:
            _known.update(version=version, hosts=frozenset(hosts_with_evidence()))
        return _known["hosts"]  # type: ignore[return-value]


def _maybe_known(url: str, hosts: frozenset[str]) -> bool:
    """A cheap look at the URL's host; anything unusual (IDNA, escapes, backslashes, user info, odd syntax) is
    passed on to the exact parser, since a browser may fetch another host than the plain split shows."""
    if not url.isascii() or any(ch in url for ch in "\\%@\t\r\n"):
        return True
    host = url.partition("//")[2].partition("/")[0].rpartition("@")[2].partition(":")[0].lower().rstrip(".")
    return not host.isascii() or "?" in host or "#" in host or host in hosts


def url_decisions(urls: list[str], *, as_of: datetime | None = None) -> list[SiteDecision | None]:
    """Per URL, its site's denial (the first in precedence order, with the rule and evidence time), or None."""
    if as_of is None:
        known = _hosts_known_now()
        if not known:
            return [None] * len(urls)
        sites = [site_of(url) if url and _maybe_known(url, known) else None for url in urls]
    else:
        sites = [site_of(url) if url else None for url in urls]
    evidence = evidence_in_force({s[1] for s in sites if s}, as_of=as_of)
    decisions: list[SiteDecision | None] = []
    for url, site in zip(urls, sites, strict=True):
        rows = evidence.get(site[1], []) if site else []
        decisions.append(_decide(url, rows) if rows else None)
    return decisions


def _decide(url: str, rows: list[SiteEvidence]) -> SiteDecision | None:
    applicable = [r for r in rows if r.document != SiteEvidence.Document.HEADERS]
    if len(applicable) < len(rows):  # header rows apply to the URL they were fetched for only
        key = normalize_url(url)
        applicable += [
            r for r in rows if r.document == SiteEvidence.Document.HEADERS and normalize_url(r.url) == key
        ]
    found = judge(applicable, url)
    if found is None:
        return None
    decision, row = found
    return SiteDecision(False, decision.rule, decision.reason, row.url, row.fetched_at)


def host_evidence(host: str) -> QuerySet[SiteEvidence]:
    return SiteEvidence.objects.filter(host=host.strip().lower().rstrip(".")).order_by("-fetched_at", "-id")


def host_summary(host: str) -> dict:
    """For a site operator: per document, the latest fetch (whatever came of it) and the evidence in force."""
    host = host.strip().lower().rstrip(".")
    in_force = {row.document: row for row in evidence_in_force([host]).get(host, [])}
    latest: dict[str, SiteEvidence] = {}
    for row in host_evidence(host).exclude(document=SiteEvidence.Document.HEADERS)[:200]:
        latest.setdefault(row.document, row)
    return {"host": host, "latest": latest, "in_force": in_force, "as_of": timezone.now()}
