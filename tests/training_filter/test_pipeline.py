"""The pure building blocks: vectorised URL keys against core.urlnorm, domain levels, pHash banding."""

import numpy as np
import pyarrow as pa

from core.phash_index import PhashIndex
from core.urlkeys import domain_suffixes, url_keys
from core.urlnorm import host_of, normalize_url, parent_domains
from training_filter.pipeline.keyindex import KeySet

URLS = [
    "HTTP://WWW.Example.COM/A/B/",
    "https://example.com/A/B",
    "http://example.com:80/x",
    "https://example.com:443/x",
    "http://example.com:8080/x",
    "example.com/Path#frag",
    "https://example.com/p?b=2&a=1",
    "https://example.com/p?a=1&b=2#top",
    "https://example.com/p?q=a b",
    "ftp://example.com/a",
    "",
    None,
    "not a url",
    "http://www.example.com.",
    "https://Sub.A.Example.co.uk/IMG.PNG/",
    "http://example.com",
    "http://example.com/?",
    "http://example.com//",
    "  http://example.com/a  ",
    "http://user:pw@example.com/a",
    "http://bücher.de/x",
    "http://[::1]/a",
    "http://www./a",
    "http://localhost/a",
    "https://example.com/a%20b",
    "https://example.com/CaseSensitive/Path.JPG",
    "http://example.com:99999/x",
    "http://exa_mple.com/x",
    "https://example.com/p?w=512&h=512",
    "https://example.com/p?h=1&h=0",
    "https://example.com/p?a1=x&a=y",
    "https://example.com/p?a",
    "https://example.com/p?a=b+c",
    "https://example.com?x=1",
    "https://example.com/p?b=1&a=2&c=3",
    "https://example.com/p?a.b=~1&A=2",
]


def test_vectorised_url_keys_agree_with_core_urlnorm():
    keys, hosts = url_keys(pa.array(URLS, pa.string()))
    for url, key, host in zip(URLS, keys.to_pylist(), hosts.to_pylist(), strict=True):
        expected = normalize_url(url or "")
        assert key == expected, url
        assert host == (host_of(url or "") if expected else ""), url


def test_url_keys_keep_path_case_and_merge_equivalent_spellings():
    keys, _ = url_keys(
        pa.array(["HTTP://WWW.EX.COM/Img.PNG/", "https://ex.com/Img.PNG", "https://ex.com/img.png"])
    )
    assert keys[0] == keys[1]
    assert keys[1] != keys[2]


def test_domain_levels_are_the_host_and_its_parent_domains():
    hosts = ["a.b.example.com", "example.com", "localhost", "", None, "x.co.uk"]
    levels = domain_suffixes(pa.array(hosts, pa.string()))
    for i, host in enumerate(hosts):
        mine = [level[i].as_py() for level in levels if level[i].as_py()]
        assert mine == (parent_domains(host) if host else [])


def test_phash_index_finds_exactly_the_hashes_within_the_radius():
    rng = np.random.default_rng(7)
    registry = rng.integers(-(2**63), 2**63 - 1, size=3000, dtype=np.int64)
    queries = rng.integers(-(2**63), 2**63 - 1, size=4000, dtype=np.int64)
    for i in range(0, 4000, 4):  # plant copies 0..6 bits away, including the "one bit in every band" case
        value = int(registry[i % 3000]) & ((1 << 64) - 1)
        bits = (
            [b * 16 + int(rng.integers(16)) for b in range(4)]
            if i % 20 == 0
            else rng.choice(64, i % 7, False)
        )
        for bit in bits:
            value ^= 1 << int(bit)
        queries[i] = np.array([value], dtype=np.uint64).view(np.int64)[0]
    for radius in (2, 4, 5):
        found = PhashIndex(registry, radius).lookup(queries)
        xor = queries.view(np.uint64)[:, None] ^ registry.view(np.uint64)[None, :]
        close = np.bitwise_count(xor) <= radius
        expected = np.where(close.any(axis=1), close.argmax(axis=1), -1)
        assert (found == expected).all(), radius


def test_phash_index_nearest_is_the_closest_hash_and_the_first_of_equally_close_ones():
    rng = np.random.default_rng(11)
    registry = rng.integers(-(2**63), 2**63 - 1, size=2000, dtype=np.int64)
    registry[1000:1100] = registry[:100]  # equal hashes: the first row must answer
    queries = registry[rng.integers(0, 2000, size=3000)].view(np.uint64).copy()
    for i, bits in enumerate(rng.integers(0, 64, size=(3000, 6))):
        for bit in bits[: i % 7]:
            queries[i] ^= np.uint64(1) << np.uint64(bit)
    queries = queries.view(np.int64)
    for radius in (3, 4, 6):
        rows, distances = PhashIndex(registry, radius).nearest(queries)
        xor = queries.view(np.uint64)[:, None] ^ registry.view(np.uint64)[None, :]
        dist = np.bitwise_count(xor).astype(np.int64)
        closest = dist.min(axis=1)
        expected = np.where(closest <= radius, dist.argmin(axis=1), -1)
        assert (rows == expected).all(), radius
        assert (distances == np.where(expected >= 0, closest, -1)).all(), radius


def test_key_set_matches_only_equal_strings():
    keys = KeySet(pa.array(["a.com/x", "b.com/y", "", "c.com/Z"]))
    found = keys.lookup(pa.array(["c.com/Z", "c.com/z", "a.com/x", None, "zzz"]))
    assert found.tolist() == [3, -1, 0, -1, -1]


def test_key_set_answers_a_repeated_key_with_its_first_row():
    keys = KeySet(pa.array(["a.com/x", "a.com/x", "a.com/x", "b.com/y", "b.com/y"]))
    assert keys.lookup(pa.array(["b.com/y", "a.com/x"])).tolist() == [3, 0]
