"""Ownership proofs fetched from outside: the well-known file over HTTP(S) and DNS TXT records.

Both fetchers are plain functions passed into the service, so tests use a real local HTTP server and an injected
resolver. The HTTP fetch goes through core.fetch (one resolution, public addresses only, the default port, no
redirects, a total deadline and a byte cap): a verification request must not become a way to probe the server's
own network, and its errors say what went wrong without transport detail.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from core.fetch import Outcome, fetch_one

WELL_KNOWN_PATH = "/.well-known/provenant-verify.txt"
TXT_PREFIX = "provenant-verify="
MAX_BYTES = 4096

HttpFetcher = Callable[[str], str]
TxtResolver = Callable[[str], list[str]]


class VerificationFailed(Exception):
    pass


def fetch_http(url: str) -> str:
    result = fetch_one(url, max_bytes=MAX_BYTES, deadline_s=settings.OPTOUT_VERIFY_TIMEOUT_S, max_redirects=0)
    if result.outcome == Outcome.REFUSED:
        raise VerificationFailed(f"{url} was not fetched: {result.reason}")
    if result.outcome != Outcome.FETCHED:
        raise VerificationFailed(f"{url} could not be fetched: {result.reason}")
    if not result.ok:
        raise VerificationFailed(f"{url} answered HTTP {result.status}")
    return result.body.decode("utf-8", errors="replace")


def resolve_txt(name: str) -> list[str]:
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver()
    resolver.lifetime = settings.OPTOUT_VERIFY_TIMEOUT_S
    try:
        answer = resolver.resolve(name, "TXT")
    except dns.exception.DNSException as exc:
        raise VerificationFailed(f"no TXT record at {name}: {exc.__class__.__name__}") from exc
    return [b"".join(record.strings).decode("utf-8", errors="replace") for record in answer]


def well_known_url(domain: str) -> str:
    return f"{settings.OPTOUT_VERIFY_SCHEME}://{domain}{WELL_KNOWN_PATH}"


def check_http(domain: str, token: str, fetcher: HttpFetcher) -> bool:
    body = fetcher(well_known_url(domain))
    return token in body.split()


def check_dns(domain: str, token: str, resolver: TxtResolver) -> bool:
    """The token at `_provenant.DOMAIN` or at DOMAIN itself, as `provenant-verify=TOKEN`."""
    for name in (f"_provenant.{domain}", domain):
        try:
            records = resolver(name)
        except VerificationFailed:
            continue
        if any(r.strip().strip('"') == TXT_PREFIX + token for r in records):
            return True
    return False
