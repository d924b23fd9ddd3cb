"""Fixtures for search and indexing tests: the fake encoder, a private index directory, real fixture works."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from tests.provenance.factories import AssetFactory, CollectionFactory, ContributorFactory

FIXTURE_COUNT = 16


# the encoder engineer's modules test the real model and manage their own settings
REAL_ENCODER_MODULES = {"test_default_model", "test_compat", "test_openclip_encoder"}


@pytest.fixture(autouse=True)
def fake_encoder(request):
    """Every search/index test here runs on the deterministic fake encoder and its own index directory."""
    if request.node.get_closest_marker("real_encoder") or request.module.__name__.rsplit(".", 1)[-1] in (
        REAL_ENCODER_MODULES
    ):
        yield None
        return
    yield from _fake_encoder(request.getfixturevalue("settings"), request.getfixturevalue("tmp_path"))


def _fake_encoder(settings, tmp_path):
    from core import exclusions
    from embeddings.encoders.factory import get_encoder
    from embeddings.search.stores import stores_reset

    settings.CLIP_MODEL = "fake"
    settings.PROVENANT_INDEX_DIR = tmp_path / "index"
    get_encoder.cache_clear()
    stores_reset()
    saved_providers = list(exclusions._providers)
    yield get_encoder()
    exclusions._providers[:] = saved_providers
    get_encoder.cache_clear()
    stores_reset()


@pytest.fixture(scope="session")
def rendered_fixtures(tmp_path_factory) -> list[dict]:
    """The first fixture SVGs, rendered once per session: path, sha256 and hashes (rendering costs ~0.1 s each)."""
    from provenance.hashing import compute_hashes
    from provenance.imaging import load_rgb_path

    root = Path(__file__).resolve().parents[1] / "fixtures" / "openclipart"
    works = []
    for path in sorted(root.rglob("*.svg"))[:FIXTURE_COUNT]:
        decoded = load_rgb_path(path)
        phash, pdq, quality = compute_hashes(decoded.image)
        works.append(
            {
                "path": path,
                "image": decoded.image,
                "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "phash": phash,
                "pdq": pdq,
                "pdq_quality": quality,
            }
        )
    return works


@pytest.fixture
def works(db, rendered_fixtures):
    """Asset rows for the fixture works, credited to three contributors on three domains."""
    from provenance.models import ContributorAlias

    collection = CollectionFactory(name="fixtures")
    people = []
    for i, name in enumerate(["Ada Lovelace", "Grace Hopper", "Hedy Lamarr"]):
        person = ContributorFactory(display_name=name, name_key=name.lower().replace(" ", ""))
        ContributorAlias.objects.create(contributor=person, raw_name=f"{name.split()[0].lower()}_{i}")
        people.append(person)
    domains = ["art.example.org", "cdn.pictures.example.com", "other.test"]
    assets = []
    for i, work in enumerate(rendered_fixtures):
        assets.append(
            AssetFactory(
                collection=collection,
                source=str(work["path"].relative_to(work["path"].parents[2])),
                url=f"https://{domains[i % 3]}/works/{i}.svg",
                domain=domains[i % 3],
                local_path=str(work["path"]),
                sha256=work["sha256"],
                format="SVG",
                title=f"{work['path'].stem.replace('_', ' ')}",
                contributor=people[i % 3],
                creator_raw=people[i % 3].display_name,
                phash=work["phash"],
                pdq=work["pdq"],
                pdq_quality=work["pdq_quality"],
            )
        )
    return assets


@pytest.fixture
def indexed_works(works):
    from embeddings.services import index_collection

    index_collection(collection_name="fixtures")
    return works


def jpeg_bytes(image, quality: int = 75) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
