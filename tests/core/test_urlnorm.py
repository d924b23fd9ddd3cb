"""URLs judged by the host a browser or crawler would fetch (WHATWG parsing), by the reference functions and by
the vectorised keys of the manifest pipeline alike."""

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.urlkeys import url_keys
from core.urlnorm import host_of, normalize_host, normalize_url

# (URL, the host a browser fetches it from)
TRICKS = [
    ("http://victim.org\\@evil.com/x", "victim.org"),  # a backslash is a slash in http(s) URLs
    (
        "http://victim.org%2e/x",
        "victim.org",
    ),  # the host is percent-decoded, and the trailing dot is the same host
    ("http://victim.org%2E%2E/x", "victim.org"),  # trailing dots never make another site
    ("http://evil.com@victim.org/x", "victim.org"),  # user info is not the host
    ("http://victim.org:80@evil.com/x", "evil.com"),
    ("http://victim.org#@evil.com/", "victim.org"),
    ("http://victim.org?@evil.com/", "victim.org"),
    ("http://vic\ttim.org/x", "victim.org"),  # tabs and newlines are removed
    ("http://ｖｉｃｔｉｍ．ｏｒｇ/x", "victim.org"),  # full-width letters and dot
    ("http://victim。org/x", "victim.org"),  # ideographic full stop
    ("HTTP://WWW.VICTIM.ORG./x", "victim.org"),
    ("http://0x7f.1/", "127.0.0.1"),
    ("http:victim.org/x", "victim.org"),  # a special scheme without slashes
    ("http:\\\\victim.org\\x", "victim.org"),
    ("http://faß.de/", "xn--fa-hia.de"),  # UTS 46 non-transitional, as browsers (not IDNA 2003's fass.de)
]


@pytest.mark.parametrize(("url", "host"), TRICKS)
def test_the_host_is_the_one_a_browser_would_fetch(url, host):
    assert host_of(url) == host
    assert normalize_url(url).startswith(host + "/")
    keys, hosts = url_keys(pa.array([url]))  # the manifest pipeline's vectorised keys
    assert (keys[0].as_py(), hosts[0].as_py()) == (normalize_url(url), host)


def test_dot_segments_and_percent_encoded_dots_resolve_as_a_browser_resolves_them():
    assert normalize_url("https://x.org/a/../b") == normalize_url("https://x.org/b") == "x.org/b"
    assert normalize_url("https://x.org/a/%2e%2e/b") == "x.org/b"
    assert normalize_url("https://x.org/a/./b/") == "x.org/a/b"


def test_a_path_is_compared_in_its_percent_encoded_form():
    assert normalize_url("https://x.org/a b") == normalize_url("https://x.org/a%20b") == "x.org/a%20b"
    assert normalize_url("https://x.org/café") == "x.org/caf%C3%A9"


@pytest.mark.parametrize(
    ("typed", "host"),
    [("WWW.Example.COM.", "example.com"), ("ｅｘａｍｐｌｅ.com", "example.com"), ("bücher.de", "xn--bcher-kva.de"),
     ("victim.org%2e", "victim.org"), ("example.com:8080", "example.com:8080"), ("me@example.com", "me@example.com")],
)  # fmt: skip
def test_a_typed_domain_is_normalised_but_more_than_a_host_is_left_for_validation_to_refuse(typed, host):
    assert normalize_host(typed) == host


_PIECES = st.sampled_from(
    ["http://", "https://", "HTTP://", "www.", "Ex", "example", ".com", ".", "/", "a", "B", "%2e", "%2E", "..",
     "\\", "@", ":", "8080", "?", "&", "=", "#", " ", "\t", "é", "ｅ", "0x7f", "1", "xn--", "-", "~", "%20", "'",
     '"', "<", "^", "{", "|"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=14).map("".join))
def test_vectorised_keys_agree_with_the_reference_on_any_url(tail):
    urls = [tail, "https://example.com/" + tail, "http://" + tail]
    keys, hosts = url_keys(pa.array(urls))
    for url, key, host in zip(urls, keys.to_pylist(), hosts.to_pylist(), strict=True):
        expected = normalize_url(url)
        assert (key or "") == expected, url
        assert (host or "") == (host_of(url) if expected else ""), url
