"""URL and domain normalisation shared by opt-outs, signals, the check API and manifest filtering.

A URL is judged by the host a browser or crawler would fetch: parsing follows the WHATWG URL standard (ada-url),
so `http://victim.org\\@evil.com/x` is on victim.org (a backslash is a slash), `http://victim.org%2e/x` is on
victim.org. (the host is percent-decoded), user info is not the host, full-width and IDNA hosts become their
ASCII form, and `0x7f.1` is 127.0.0.1. Python's urlsplit reads several of these differently.

Equivalent spellings of one URL must meet (host case, `www.`, trailing dot, default port, http/https, trailing
slash, fragment, query order), but the path keeps its case: over-normalising removes works nobody opted out.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

from ada_url import parse_url
from ada_url.ada_adapter import ParseAttributes

_DEFAULT_PORTS = ("80", "443")
_SPECIAL = ("http:", "https:")
_ATTRIBUTES = ("protocol", "hostname", "port", "pathname", "search")
_PLAIN_HOST = re.compile(r"[a-z0-9.\-]+")  # what WHATWG host parsing leaves as it is (save numeric hosts)
_NUMERIC_END = re.compile(r"(?:^|\.)(?:[0-9]+|0x[0-9a-f]*)\.?$")  # WHATWG parses such a host as IPv4


def parse_http_url(url: str) -> ParseAttributes | None:
    """The WHATWG parse of an http(s) URL (a bare `host/path` is taken as http://), or None."""
    url = url.strip()
    if not url:
        return None
    try:
        parts = parse_url(url, _ATTRIBUTES)
    except ValueError:
        parts = None
    if (parts is None or parts["protocol"] not in _SPECIAL) and "://" not in url:
        try:
            parts = parse_url("http://" + url, _ATTRIBUTES)
        except ValueError:
            return None
    if parts is None or parts["protocol"] not in _SPECIAL or not parts["hostname"]:
        return None
    return parts


def _clean_host(host: str) -> str:
    host = host.rstrip(".")
    return host[4:] if host.startswith("www.") else host


def normalize_host(host: str) -> str:
    """A domain as typed (`WWW.Example.COM.`, `ｅｘａｍｐｌｅ.com`, `bücher.de`) in the form URL hosts are compared
    in; anything that is more than a host (a port, user info, a path) comes back lowercased but otherwise as given,
    for the caller's validation to refuse."""
    host = host.strip().lower()
    if _PLAIN_HOST.fullmatch(host) and not _NUMERIC_END.search(host) and "xn--" not in host:
        return _clean_host(host)
    try:
        parts = parse_url("http://" + host, ("hostname", "port", "pathname", "search", "hash", "username"))
    except ValueError:
        return host
    if parts["port"] or parts["username"] or parts["pathname"] != "/" or parts["search"] or parts["hash"]:
        return host
    return _clean_host(parts["hostname"])


def host_of(url: str) -> str:
    """The normalised host of a URL ('' when it has none)."""
    parts = parse_http_url(url)
    return _clean_host(parts["hostname"]) if parts else ""


def normalize_url(url: str) -> str:
    """A canonical key for a URL: host and scheme-insensitive, path-case-sensitive. '' for a non-URL."""
    parts = parse_http_url(url)
    if parts is None:
        return ""
    host = _clean_host(parts["hostname"])
    if parts["port"] and parts["port"] not in _DEFAULT_PORTS:
        host = f"{host}:{parts['port']}"
    path = parts["pathname"] or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    query = parts["search"][1:]
    if query:
        query = urlencode(sorted(parse_qsl(query, keep_blank_values=True)))
    return f"{host}{path}" + (f"?{query}" if query else "")


def parent_domains(host: str) -> list[str]:
    """`a.b.example.com` -> [`a.b.example.com`, `b.example.com`, `example.com`]: a domain opt-out covers subdomains."""
    labels = normalize_host(host).split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)] or ([host] if host else [])
