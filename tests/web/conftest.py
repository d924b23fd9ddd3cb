"""Fixtures for the pages: fake encoder, private index / thumbnail folders, and a small ingested demo collection.

The demo collection is made the way an operator makes one: fixture SVGs copied to a folder (plus one re-saved PNG
copy of the target work, so the target has a near-copy), ingested and indexed with the real services.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openclipart"
DEMO_FILES = [
    "computer/bb_mail_new.svg",
    "animals/bugs/ladybug_02.svg",
    "animals/mammals/fawn_mo_01.svg",
    "buildings/homes/big_house_01.svg",
    "computer/bb_cd_.svg",
    "computer/disquete_sergio_luiz_ara_01.svg",
    "computer/folders/folder.svg",
    "animals/dinosaurs/dinosauro_architetto_fra_02.svg",
]
TARGET = DEMO_FILES[0]
COPY_NAME = "reposted/bb_mail_new_copy.png"


@pytest.fixture(autouse=True)
def web_settings(settings, tmp_path):
    """Fake encoder, and every file the pages write (index, thumbnails) under this test's tmp folder."""
    from embeddings.encoders.factory import get_encoder
    from embeddings.search.stores import stores_reset
    from optout import exclusions as optout_exclusions

    settings.CLIP_MODEL = "fake"
    settings.PROVENANT_INDEX_DIR = tmp_path / "index"
    settings.DATA_DIR = tmp_path / "data"
    settings.PROVENANT_INDEX_WORKERS = 1
    settings.PROVENANT_INGEST_WORKERS = 1

    def reset():
        get_encoder.cache_clear()
        stores_reset()
        optout_exclusions.forget()  # each test has a fresh database: ids repeat

    reset()
    yield settings
    reset()


def _png_copy(svg: Path) -> bytes:
    """The work as someone re-hosting it would: rasterised, shrunk to 80 %, saved as PNG."""
    from provenance.imaging import load_rgb_path

    image = load_rgb_path(svg).image
    image = image.resize((int(image.width * 0.8), int(image.height * 0.8)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def demo_works(tmp_path) -> dict:
    """Ingest and index the demo folder; returns {"target": Asset, "copy": Asset, "assets": [...]}."""
    from embeddings.services import index_collection
    from provenance.models import Asset
    from provenance.services import ingest_run_create, ingest_run_execute

    folder = tmp_path / "demo"
    for name in DEMO_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / name, folder / name)
    (folder / COPY_NAME).parent.mkdir(parents=True, exist_ok=True)
    (folder / COPY_NAME).write_bytes(_png_copy(FIXTURES / TARGET))
    run = ingest_run_create(path=str(folder), collection_name="demo")
    ingest_run_execute(run_id=run.pk, workers=1)
    index_collection(collection_name="demo", workers=1)
    assets = list(Asset.objects.filter(collection__name="demo").order_by("id"))
    by_source = {a.source: a for a in assets}
    return {"target": by_source[TARGET], "copy": by_source[COPY_NAME], "assets": assets}


def cropped_jpeg(asset, *, fraction: float = 0.7, quality: int = 40) -> bytes:
    """A central crop of the work, re-encoded as a low-quality JPEG: what an artist finds re-posted."""
    from provenance.imaging import load_rgb_path

    image = load_rgb_path(asset.local_path).image
    w, h = image.size
    cw, ch = int(w * fraction), int(h * fraction)
    left, top = (w - cw) // 2, (h - ch) // 2
    buffer = io.BytesIO()
    image.crop((left, top, left + cw, top + ch)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
