"""The works a crawl is for: the distinct hosts (and, for header fetches, the URLs) of a collection or of an
external Parquet manifest (img2dataset layout: a `url` column)."""

from __future__ import annotations

from collections.abc import Iterator

from core.exceptions import ApplicationError
from core.urlnorm import parse_http_url
from provenance.models import Asset, Collection

URL_COLUMNS = ("url", "URL")


def collection_urls(name: str) -> Iterator[str]:
    if not Collection.objects.filter(name=name).exists():
        raise ApplicationError(f"No collection named {name!r}.", status_code=404)
    assets = Asset.objects.filter(collection__name=name).exclude(url="").order_by("id")
    yield from assets.values_list("url", flat=True).iterator(chunk_size=10_000)


def manifest_urls(path: str) -> Iterator[str]:
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(path, format="parquet")
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise ApplicationError(f"Cannot read the input manifest: {exc}") from exc
    column = next((c for c in URL_COLUMNS if c in dataset.schema.names), None)
    if column is None:
        raise ApplicationError("The input manifest has no `url` column.")
    for batch in dataset.to_batches(columns=[column], batch_size=65_536):
        yield from (u for u in batch.column(0).to_pylist() if u)


def site_of(url: str) -> tuple[str, str] | None:
    """(scheme, host as fetched: lower case, IDNA) of an http(s) URL on a default port; None otherwise. Parsed as a
    browser would (WHATWG), so `http://victim.org\\@evil.com/` is judged as victim.org, the host it fetches."""
    parts = parse_http_url(url)
    if parts is None or parts["port"] not in ("", "80", "443"):
        return None
    return parts["protocol"][:-1], parts["hostname"].rstrip(".")


def hosts_of(urls: Iterator[str], *, with_urls: bool) -> dict[str, dict]:
    """{host: {"scheme": https if any work is served over https, "urls": [work URLs] when with_urls}}."""
    hosts: dict[str, dict] = {}
    for url in urls:
        site = site_of(url)
        if site is None:
            continue
        scheme, host = site
        entry = hosts.setdefault(host, {"scheme": scheme, "urls": []})
        if scheme == "https":
            entry["scheme"] = "https"
        if with_urls:
            entry["urls"].append(url)
    return hosts
