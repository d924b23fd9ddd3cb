"""Perceptual hashes of decoded images: 64-bit pHash and 256-bit PDQ, with vectorised Hamming distances.

Pure functions (numpy, imagehash, pdqhash; no Django) so that both the ingest (provenance) and the search
(embeddings) use the same definitions. pHash is stored as a *signed* int64 because databases have no unsigned
64-bit integer; the bit pattern is what counts, so helpers convert in both directions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

PDQ_BITS = 256


def phash_int64(image: Image.Image) -> int:
    """The 64-bit DCT pHash of `image` as a signed int64 (the database representation)."""
    import imagehash

    bits = imagehash.phash(image).hash.flatten()  # 64 booleans, most significant first
    return bits_to_int64(bits)


def bits_to_int64(bits: np.ndarray) -> int:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bool(bit))
    return unsigned_to_int64(value)


def unsigned_to_int64(value: int) -> int:
    return value - (1 << 64) if value >= (1 << 63) else value


def int64_to_unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def phash_hex(value: int) -> str:
    """16 hex digits, the form imagehash prints; handy in `why` messages and logs."""
    return f"{int64_to_unsigned(value):016x}"


def mirrored_phash_int64(image: Image.Image) -> int:
    """pHash of the left-right mirror: a flipped copy has an unrelated pHash, so we also look this one up."""
    from PIL import ImageOps

    return phash_int64(ImageOps.mirror(image))


def pdq_hash(image: Image.Image) -> tuple[str, int]:
    """(64 hex digits, quality 0-100) of the 256-bit PDQ hash. Low quality (< ~50) means a flat image."""
    import pdqhash

    bits, quality = pdqhash.compute(np.asarray(image.convert("RGB")))
    return _pdq_hex(bits), int(quality)


PDQ_MIRROR = 5  # pdqhash's dihedral order: as it is, the three turns, upside down, then left-right mirrored


def pdq_hash_and_mirror(image: Image.Image) -> tuple[str, str, int]:
    """(hex, mirror's hex, quality): PDQ of the image and of its left-right mirror from one DCT, PDQ's own way of
    hashing flips. Half the cost of hashing a mirrored copy again (most of it is filtering every pixel); the
    mirror's hash lies a few bits from that copy's (the filter's windows fall on other pixels)."""
    import pdqhash

    dihedral, quality = pdqhash.compute_dihedral(np.asarray(image.convert("RGB")))
    return _pdq_hex(dihedral[0]), _pdq_hex(dihedral[PDQ_MIRROR]), int(quality)


def _pdq_hex(bits: np.ndarray) -> str:
    return np.packbits(bits.astype(np.uint8)).tobytes().hex()


def compute_hashes(rgb_image: Image.Image) -> tuple[int, str, int]:
    """(phash as signed int64, pdq hex, pdq quality) of an RGB image, as stored on provenance.Asset."""
    rgb = rgb_image.convert("RGB") if rgb_image.mode != "RGB" else rgb_image
    pdq_hex, quality = pdq_hash(rgb)
    return phash_int64(rgb), pdq_hex, quality


def phash_distances(query: int, hashes: np.ndarray) -> np.ndarray:
    """Hamming distances between one pHash and an int64 array of pHashes (vectorised popcount)."""
    xor = np.asarray(hashes, dtype=np.int64) ^ np.int64(query)
    # unsigned: numpy counts the bits of a signed integer's absolute value
    return np.bitwise_count(xor.view(np.uint64)).astype(np.int32)


def phash_distance(a: int, b: int) -> int:
    return (int64_to_unsigned(a) ^ int64_to_unsigned(b)).bit_count()


def pdq_to_array(pdq_hexes: list[str]) -> np.ndarray:
    """(n, 32) uint8 array of packed PDQ hashes; empty/missing hashes become all zeros (callers mask them)."""
    out = np.zeros((len(pdq_hexes), PDQ_BITS // 8), dtype=np.uint8)
    for i, value in enumerate(pdq_hexes):
        if value:
            out[i] = np.frombuffer(bytes.fromhex(value), dtype=np.uint8)
    return out


def pdq_distances(query_hex: str, packed: np.ndarray) -> np.ndarray:
    """Hamming distances between one PDQ hash (hex) and an (n, 32) uint8 packed array."""
    query = np.frombuffer(bytes.fromhex(query_hex), dtype=np.uint64)
    # four 64-bit words per hash: a quarter of the byte-wise work
    words = np.ascontiguousarray(packed).view(np.uint64)
    return np.bitwise_count(words ^ query).sum(axis=1, dtype=np.int32)


# A flat or near-blank image's pHash has almost every bit equal (only the DC bit set): 123 unrelated openclipart
# drawings share 0x8000000000000000, so such a hash is no evidence that two works are the same picture.
PHASH_MIN_INFORMATIVE_BITS = 5


def phash_is_informative(value: int) -> bool:
    ones = int64_to_unsigned(value).bit_count()
    return PHASH_MIN_INFORMATIVE_BITS <= ones <= 64 - PHASH_MIN_INFORMATIVE_BITS
