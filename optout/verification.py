"""Ownership proofs fetched from outside: the well-known file over HTTP(S) and DNS TXT records.

Both fetchers are plain functions passed into the service, so tests use a real local HTTP server and an injected
resolver. The HTTP fetcher refuses private and loopback addresses unless settings allow them: a verification
request must not become a way to probe the server's own network.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.request
from collections.abc import Callable

from django.conf import settings

WELL_KNOWN_PATH = "/.well-known/provenant-verify.txt"
TXT_PREFIX = "provenant-verify="

HttpFetcher = Callable[[str], str]
TxtResolver = Callable[[str], list[str]]


class VerificationFailed(Exception):
    pass


def _refuse_private(host: str) -> None:
    if settings.OPTOUT_VERIFY_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError as exc:
        raise VerificationFailed(f"{host} does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
            raise VerificationFailed(f"{host} resolves to a private address")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # a redirect could lead to an address the check above never saw
    def redirect_request(self, *args, **kwargs):
        return None


def fetch_http(url: str) -> str:
    host = urllib.request.urlparse(url).hostname or ""
    _refuse_private(host)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=settings.OPTOUT_VERIFY_TIMEOUT_S) as response:
            return response.read(4096).decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise VerificationFailed(f"could not fetch {url}: {exc}") from exc


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
