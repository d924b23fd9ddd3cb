"""A polite, safe HTTP fetcher for documents on other people's servers (robots.txt, ai.txt, tdmrep.json, response
headers, domain-verification files).

What makes it safe to point at any URL a user or a manifest names:
- the host is resolved once, every address it resolves to must be global (`ipaddress.is_global`), and the
  connection goes to that checked address with the Host header and TLS SNI set to the name, so a DNS answer that
  changes between the check and the connect (rebinding) cannot lead anywhere else;
- only the scheme's default port, no user info; a redirect is followed only on the same host (at most
  `FETCH_MAX_REDIRECTS` times) and to the same checked address;
- a total deadline over resolution, connection, redirects and body (a slow drip cannot hold a worker), and a byte
  cap per response;
- failures are reported as a short outcome, never with transport detail (a TLS or socket error text would tell a
  caller which ports answer on the server's network).

What makes it polite: an identifying User-Agent, one request at a time per host with at least
`FETCH_HOST_INTERVAL_S` between the end of one response and the next request (a crawl delay as the server sees it:
a token bucket spaces the moments requests are *allowed*, and a request delayed by our own load would then reach the
server too soon after the previous one), and a global concurrency limit per `Fetcher`. Tests on loopback add networks to `FETCH_EXTRA_ALLOWED_NETWORKS` and inject a
resolver (`FETCH_RESOLVER`); production sets neither.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import certifi
import httpx
from django.conf import settings
from django.utils.module_loading import import_string

Resolver = Callable[[str], list[str]]
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECTS = {301, 302, 303, 307, 308}


class Outcome:
    FETCHED = "fetched"  # an HTTP response, whatever its status
    UNREACHABLE = "unreachable"  # no answer: DNS, connection, TLS, deadline
    REFUSED = "refused"  # we would not fetch it: address, port, scheme, a redirect off the host


@dataclass(frozen=True)
class FetchResult:
    url: str
    outcome: str
    status: int | None = None
    final_url: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names; repeated headers joined by "\n"
    body: bytes = b""
    truncated: bool = False
    address: str = ""  # the address connected to
    reason: str = ""  # a short, transport-free explanation when not fetched

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.FETCHED and self.status is not None and 200 <= self.status < 300


class Refused(Exception):
    pass


def system_resolve(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]


def connect_port(scheme: str) -> int:
    """The scheme's default port; tests serving on loopback map it to their server's (FETCH_PORT_MAP)."""
    return int(settings.FETCH_PORT_MAP.get(scheme, DEFAULT_PORTS[scheme]))


def user_agent() -> str:
    return settings.FETCH_USER_AGENT


NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if not ip.is_global or ip.is_multicast:
        return False
    if ip.version == 6:
        # an IPv6 address that carries an IPv4 one (mapped, 6to4, NAT64) reaches that IPv4 address: judge it too
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and any(ip in net for net in NAT64):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _public(embedded)
    return True


def address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if _public(ip):
        return True
    return any(ip in ipaddress.ip_network(net) for net in settings.FETCH_EXTRA_ALLOWED_NETWORKS)


def _target(url: str) -> tuple[str, str, str]:
    """(scheme, host, path with query) of a URL we are willing to fetch, else Refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise Refused("only http and https are fetched")
    if parts.username is not None or parts.password is not None:
        raise Refused("URLs with user info are not fetched")
    if port is not None and port != DEFAULT_PORTS[scheme]:
        raise Refused("only the default port is fetched")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise Refused("the URL has no host")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise Refused("the host is not a valid domain name") from None
    return scheme, host.lower(), (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class Fetcher:
    """One per crawl (or per verification): it holds the concurrency limit, the per-host turns and the TLS
    context, and opens one connection pool per host so that no TLS session is reused across host names."""

    def __init__(
        self,
        *,
        concurrency: int | None = None,
        host_interval_s: float | None = None,
        resolver: Resolver | None = None,
    ):
        self.semaphore = asyncio.Semaphore(concurrency or settings.FETCH_CONCURRENCY)
        self.host_interval_s = settings.FETCH_HOST_INTERVAL_S if host_interval_s is None else host_interval_s
        self.resolver = resolver or import_string(settings.FETCH_RESOLVER)
        self.host_locks: dict[str, asyncio.Lock] = {}
        self.not_before: dict[str, float] = {}  # loop time before which a host gets no request
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.addresses: dict[str, str | Refused] = {}
        # the CA bundle httpx itself uses: no dependency on the host's certificate store
        self.ssl_context = ssl.create_default_context(cafile=certifi.where())

    async def _wait_turn(self, host: str) -> None:
        delay = self.not_before.get(host, 0.0) - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _done(self, host: str) -> None:
        self.not_before[host] = asyncio.get_running_loop().time() + self.host_interval_s

    def client(self, host: str) -> httpx.AsyncClient:
        """One connection pool per host name: a TLS session is never reused for another name, even when two
        names share an address."""
        if host not in self.clients:
            self.clients[host] = httpx.AsyncClient(
                verify=self.ssl_context, follow_redirects=False, trust_env=False,
                limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
            )  # fmt: skip
        return self.clients[host]

    async def release(self, host: str) -> None:
        """Close a finished host's connections and drop its turn and resolution (a crawl of millions of hosts
        must not keep them)."""
        self.host_locks.pop(host, None)
        self.not_before.pop(host, None)
        self.addresses.pop(host, None)
        client = self.clients.pop(host, None)
        if client is not None:
            await client.aclose()

    async def aclose(self) -> None:
        for host in list(self.clients):
            await self.release(host)

    async def resolve(self, host: str) -> str:
        """The host's one checked address, resolved once per Fetcher; Refused if any address is not allowed."""
        cached = self.addresses.get(host)
        if cached is None:
            try:
                answers = [str(ipaddress.ip_address(host))]  # an address literal is its own answer
            except ValueError:
                answers = await self._lookup(host)
            if not answers:
                cached = Refused("the host does not resolve")
            elif not all(address_allowed(address) for address in answers):
                cached = Refused("the host resolves to an address that is not public")
            else:
                cached = answers[0]
            self.addresses[host] = cached
        if isinstance(cached, Refused):
            raise cached
        return cached

    async def _lookup(self, host: str) -> list[str]:
        try:
            return list(await asyncio.get_running_loop().run_in_executor(None, self.resolver, host))
        except (OSError, UnicodeError):
            return []

    async def fetch(
        self,
        url: str,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        max_bytes: int | None = None,
        deadline_s: float | None = None,
        max_redirects: int | None = None,
    ) -> FetchResult:
        deadline_s = deadline_s or settings.FETCH_DEADLINE_S
        redirects = settings.FETCH_MAX_REDIRECTS if max_redirects is None else max_redirects
        try:
            host = _target(url)[1]
            async with self.host_locks.setdefault(host, asyncio.Lock()):
                await self._wait_turn(host)
                try:
                    # waiting for a slot is our own queue, not the server's time: the deadline starts with it
                    async with self.semaphore, asyncio.timeout(deadline_s):
                        return await self._fetch(
                            url, host, method, headers or {}, max_bytes or settings.FETCH_MAX_BYTES, redirects
                        )
                finally:
                    self._done(host)
        except Refused as exc:
            return FetchResult(url=url, outcome=Outcome.REFUSED, reason=str(exc))
        except TimeoutError:
            return FetchResult(url=url, outcome=Outcome.UNREACHABLE, reason="no complete answer in time")
        except (httpx.HTTPError, OSError, ssl.SSLError):
            return FetchResult(url=url, outcome=Outcome.UNREACHABLE, reason="the server could not be reached")

    async def _fetch(
        self, url: str, host: str, method: str, extra: dict[str, str], max_bytes: int, redirects: int
    ) -> FetchResult:
        address = await self.resolve(host)
        client, current = self.client(host), url
        for hop in range(redirects + 1):
            if hop:
                await asyncio.sleep(self.host_interval_s)  # a redirect is one more request to the host
            result = await self._one(client, current, address, method, extra, max_bytes)
            location = result.headers.get("location", "") if result.status in REDIRECTS else ""
            if not location or hop == redirects == 0:
                return result
            current = urljoin(current, location.split("\n", 1)[0].strip())
            next_host = _target(current)[1]
            if next_host != host:
                raise Refused(f"redirected to another host ({next_host})")
        raise Refused(f"more than {redirects} redirects")

    async def _one(
        self, client: httpx.AsyncClient, url: str, address: str, method: str, extra: dict, max_bytes: int
    ) -> FetchResult:
        scheme, host, path = _target(url)
        # connect to the checked address itself; the name goes only into Host and SNI (and the certificate check)
        literal = f"[{address}]" if ":" in address else address
        request = client.build_request(
            method,
            f"{scheme}://{literal}:{connect_port(scheme)}{path}",
            headers={"Host": host, "User-Agent": user_agent(), "Accept-Encoding": "identity", **extra},
            extensions={"sni_hostname": host},
        )
        response = await client.send(request, stream=True)
        try:
            body, truncated = await _read_capped(response, max_bytes)
        finally:
            await response.aclose()
        headers: dict[str, str] = {}
        for name, value in response.headers.multi_items():
            headers[name.lower()] = f"{headers[name.lower()]}\n{value}" if name.lower() in headers else value
        return FetchResult(
            url=url, outcome=Outcome.FETCHED, status=response.status_code, final_url=url,
            headers=headers, body=body, truncated=truncated, address=address,
        )  # fmt: skip


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    chunks, size = [], 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"".join(chunks)[:max_bytes], True
    return b"".join(chunks), False


def fetch_one(url: str, **kwargs) -> FetchResult:
    """A single fetch from synchronous code (a view, a service): its own event loop and Fetcher."""

    async def run() -> FetchResult:
        fetcher = Fetcher()
        try:
            return await fetcher.fetch(url, **kwargs)
        finally:
            await fetcher.aclose()

    return asyncio.run(run())
