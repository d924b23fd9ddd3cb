"""Vectorised URL normalisation with pyarrow.compute, agreeing with core.urlnorm (the reference semantics).

The common shape (http(s), a plain ASCII host, a path and query of characters the WHATWG parser leaves alone, no
dot segments, port or user info) is normalised with array kernels; every other row (ports, user info, IDNA or
numeric hosts, backslashes, percent-encoded dots, characters a browser would percent-encode) goes through
core.urlnorm.normalize_url itself, so the two can never disagree on the rare forms and the hot path stays
vectorised.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from core.urlnorm import host_of, normalize_url

# scheme, host, path and query of the simple shape; a fragment is dropped; anything else falls back to Python.
# The path's characters are those WHATWG serialises unchanged (no space, quote, angle bracket, backslash, non-ASCII).
_SIMPLE = (
    r"^(?i:https?)://(?P<host>[A-Za-z0-9.\-]+)(?P<path>/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*)?"
    r"(?:\?(?P<query>[^#]*))?(?:#.*)?$"
)
# a dot segment (`/./`, `/../`, `%2e`) is resolved by the parser; a host ending in a number is an IPv4 address to
# it (`0x7f.1` is 127.0.0.1); an `xn--` label is checked as punycode: all of these go to the reference. The path's
# marks are plain substrings (a literal search is several times faster than a regex)
_NOT_SIMPLE_PATH = ("/.", "%2e", "%2E")
_NOT_SIMPLE_HOST = r"(?:^|\.)(?:[0-9]+|0[xX][0-9A-Fa-f]*)\.?$|xn--"
# a query of one or two name=value pairs of characters that urlencode leaves alone: sorted here, vectorised
_SAFE = r"[A-Za-z0-9_.\-~]"
_QUERY = rf"^(?P<k1>{_SAFE}+)=(?P<v1>{_SAFE}*)(?:&(?P<k2>{_SAFE}+)=(?P<v2>{_SAFE}*))?$"


def _clean_host(host: pa.Array) -> pa.Array:
    host = pc.utf8_rtrim(pc.ascii_lower(host), characters=".")
    has_www = pc.starts_with(host, "www.")
    return pc.if_else(has_www, pc.utf8_slice_codeunits(host, 4), host)


def _clean_path(path: pa.Array) -> pa.Array:
    path = pc.fill_null(path, "")
    # as the reference: '' and '/' are '/', otherwise trailing slashes go (so '//' becomes '')
    short = pc.less_equal(pc.utf8_length(path), 1)
    return pc.if_else(short, "/", pc.utf8_rtrim(path, characters="/"))


def _sorted_query(query: pa.Array) -> tuple[pa.Array, pa.Array]:
    """('?' + the query with its pairs sorted as parse_qsl/urlencode would, or ''; whether the shape is simple).
    Most image URLs have no query: only those that do are parsed."""
    query = pc.fill_null(query, "")
    present = pc.not_equal(query, "")
    text, simple = _sorted_pairs(query.filter(present))
    everywhere = pc.is_valid(query)  # all true: no query is the simple shape
    return pc.replace_with_mask(query, present, text), pc.replace_with_mask(everywhere, present, simple)


def _sorted_pairs(query: pa.Array) -> tuple[pa.Array, pa.Array]:
    pairs = pc.extract_regex(query, _QUERY)
    simple = pc.fill_null(pc.is_valid(pairs), False)
    k1, v1, k2, v2 = (pc.struct_field(pairs, name) for name in ("k1", "v1", "k2", "v2"))
    one = pc.equal(pc.fill_null(k2, ""), "")
    first = pc.binary_join_element_wise(k1, v1, "=")
    second = pc.binary_join_element_wise(k2, v2, "=")
    # Python sorts (name, value) tuples: compare names first, values only on equal names
    in_order = pc.or_(pc.less(k1, k2), pc.and_(pc.equal(k1, k2), pc.less_equal(v1, v2)))
    ordered = pc.if_else(
        in_order,
        pc.binary_join_element_wise(first, second, "&"),
        pc.binary_join_element_wise(second, first, "&"),
    )
    joined = pc.if_else(pc.fill_null(one, True), first, ordered)
    return pc.binary_join_element_wise("?", pc.fill_null(joined, ""), ""), simple


def url_keys(urls: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(normalised URL, normalised host) for every URL, '' where it is not an http(s) URL."""
    urls = pc.fill_null(pc.cast(urls, pa.string()), "")
    if isinstance(urls, pa.ChunkedArray):
        urls = urls.combine_chunks()
    parts = pc.extract_regex(urls, _SIMPLE)
    simple = pc.fill_null(pc.is_valid(parts), False)
    host = _clean_host(pc.struct_field(parts, "host"))
    # www.example.com. -> example.com; an empty or dot-edged label is rare: let Python decide those
    simple = pc.and_(simple, pc.invert(pc.or_(pc.equal(host, ""), pc.match_substring(host, ".."))))
    simple = pc.and_(simple, pc.invert(pc.starts_with(host, ".")))
    simple = pc.and_(simple, pc.invert(pc.match_substring_regex(host, _NOT_SIMPLE_HOST)))
    path = pc.struct_field(parts, "path")
    for mark in _NOT_SIMPLE_PATH:
        simple = pc.and_(simple, pc.invert(pc.fill_null(pc.match_substring(path, mark), False)))
    simple = pc.fill_null(simple, False)
    query, simple_query = _sorted_query(pc.struct_field(parts, "query"))
    simple = pc.and_(simple, simple_query)
    key = pc.binary_join_element_wise(host, _clean_path(path), query, "")
    key = pc.if_else(simple, key, None)
    host = pc.if_else(simple, host, None)
    return _fallback(urls, key, host, simple)


def _fallback(urls: pa.Array, key: pa.Array, host: pa.Array, simple: pa.Array) -> tuple[pa.Array, pa.Array]:
    complex_idx = pc.indices_nonzero(pc.invert(simple))
    if len(complex_idx) == 0:
        return key, host
    raw = pc.take(urls, complex_idx).to_pylist()
    keys = pa.array([normalize_url(u) for u in raw], pa.string())
    hosts = pa.array(
        [host_of(u) if k else "" for u, k in zip(raw, keys.to_pylist(), strict=True)], pa.string()
    )
    return _scatter(key, complex_idx, keys), _scatter(host, complex_idx, hosts)


def _scatter(base: pa.Array, idx: pa.Array, values: pa.Array) -> pa.Array:
    import numpy as np

    mask = np.zeros(len(base), dtype=bool)
    mask[idx.to_numpy()] = True
    return pc.replace_with_mask(base, pa.array(mask), values)


def domain_suffixes(hosts: pa.Array, max_depth: int = 8) -> list[pa.Array]:
    """Host, then its parent domains, one array per level (null once exhausted), as core.urlnorm.parent_domains:
    `a.b.example.com` gives a.b.example.com, b.example.com, example.com (never the bare TLD)."""
    levels = []
    current = pc.if_else(pc.equal(pc.fill_null(hosts, ""), ""), None, hosts)
    for _ in range(max_depth):
        if current.null_count == len(current):
            break
        levels.append(current)
        parent = pc.replace_substring_regex(current, r"^[^.]*\.", "", max_replacements=1)
        current = pc.if_else(pc.match_substring(parent, "."), parent, None)
    return levels
