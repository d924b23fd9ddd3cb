"""URL and domain normalisation shared by opt-outs, signals and manifest filtering.

Equivalent spellings of one URL must meet (host case, `www.`, default port, http/https, trailing slash,
fragment), but the path keeps its case: over-normalising removes works nobody opted out.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    if not host.isascii():  # the idna codec is slow, and a no-op on ASCII hosts
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    return host


def host_of(url: str) -> str:
    """The normalised host of a URL ('' when it has none)."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return normalize_host(host)


def normalize_url(url: str) -> str:
    """A canonical key for a URL: host and scheme-insensitive, path-case-sensitive. '' for a non-URL."""
    url = url.strip()
    if not url:
        return ""
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    host = normalize_host(parts.hostname)
    if port and str(port) not in _DEFAULT_PORTS.values():
        host = f"{host}:{port}"
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return f"{host}{path}" + (f"?{query}" if query else "")


def parent_domains(host: str) -> list[str]:
    """`a.b.example.com` -> [`a.b.example.com`, `b.example.com`, `example.com`]: a domain opt-out covers subdomains."""
    labels = normalize_host(host).split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)] or ([host] if host else [])
