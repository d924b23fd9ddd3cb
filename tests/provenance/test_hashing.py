import numpy as np
from PIL import Image, ImageOps

from provenance import hashing


def _picture() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).resize((384, 256))


def test_phash_round_trips_through_signed_int64():
    value = hashing.phash_int64(_picture())
    assert -(1 << 63) <= value < (1 << 63)
    assert hashing.unsigned_to_int64(hashing.int64_to_unsigned(value)) == value
    import imagehash

    assert hashing.phash_hex(value) == str(imagehash.phash(_picture()))


def test_resized_copy_is_close_and_unrelated_picture_is_far():
    original = _picture()
    copy = original.resize((192, 128))
    other = Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 96, 3), dtype=np.uint8))
    hashes = np.array([hashing.phash_int64(copy), hashing.phash_int64(other)], dtype=np.int64)
    near, far = hashing.phash_distances(hashing.phash_int64(original), hashes)
    assert near <= 4 < 16 < far


def test_vectorised_distances_equal_scalar_ones():
    values = [hashing.unsigned_to_int64(v) for v in (0, 1, 2**63, 2**64 - 1, 0x0F0F)]
    got = hashing.phash_distances(values[0], np.array(values, dtype=np.int64))
    assert got.tolist() == [hashing.phash_distance(values[0], v) for v in values] == [0, 1, 1, 64, 8]


def test_mirrored_phash_matches_the_flipped_copy():
    original = _picture()
    assert hashing.mirrored_phash_int64(original) == hashing.phash_int64(ImageOps.mirror(original))


def test_compute_hashes_gives_pdq_hex_and_quality():
    phash, pdq, quality = hashing.compute_hashes(_picture())
    assert isinstance(phash, int) and len(pdq) == 64 and 0 <= quality <= 100
    assert hashing.pdq_distances(pdq, hashing.pdq_to_array([pdq, ""]))[0] == 0


def test_the_mirrors_pdq_from_the_same_transform_is_near_the_mirrored_copys():
    picture = _picture()
    as_is, mirror, quality = hashing.pdq_hash_and_mirror(picture)
    assert (as_is, quality) == hashing.pdq_hash(picture)
    packed = hashing.pdq_to_array([hashing.pdq_hash(ImageOps.mirror(picture))[0], as_is])
    to_copy, to_original = hashing.pdq_distances(mirror, packed)
    assert to_copy <= 16 and to_original >= 96
