"""A tiny trained generator (16 px, a few steps) on a handful of real openclipart works by three contributors."""

from pathlib import Path

import pytest

from tests.core.factories import OperatorFactory
from tests.provenance.factories import CollectionFactory

TINY = {
    "GENERATOR_RESOLUTION": 16,
    "GENERATOR_STEPS": 6,
    "GENERATOR_SAVE_EVERY": 3,
    "GENERATOR_SAMPLING_STEPS": 4,
    "GENERATOR_PROJ_DIM": 256,
    "GENERATOR_FEATURE_TIMESTEPS": 2,
    "GENERATOR_FEATURE_NOISE_DRAWS": 1,
    "GENERATOR_THREADS": 1,
    "GENERATOR_CONDITIONING": "keywords",
}


@pytest.fixture
def one_torch_thread():
    """Two OpenMP threads on a loaded 2-core machine spin against each other (a tiny loop took 2 s, not 0.1)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def tiny_generator_settings(settings, tmp_path):
    for name, value in TINY.items():
        setattr(settings, name, value)
    settings.GENERATOR_DIR = tmp_path / "generator"
    settings.MEDIA_ROOT = tmp_path / "media"
    from generator.runtime import loaded_generator

    loaded_generator.cache_clear()
    return settings


@pytest.fixture
def training_assets(db, openclipart_dir: Path):
    """Nine assets by three contributors, each with its contributor in the registry."""
    from provenance.models import Asset, Contributor

    collection = CollectionFactory(name="gen-test")
    files = sorted(openclipart_dir.rglob("*.svg"))[:9]
    assets = []
    for i, path in enumerate(files):
        who, _ = Contributor.objects.get_or_create(
            name_key=f"artist-{i % 3}", defaults={"display_name": f"Artist {i % 3}"}
        )
        assets.append(
            Asset.objects.create(
                collection=collection,
                source=str(path),
                local_path=str(path),
                title=path.stem,
                keywords=[path.parent.name],
                contributor=who,
            )
        )
    return assets


@pytest.fixture
def manifest_folder(training_assets, tmp_path) -> Path:
    from generator.manifest import TrainingExample, manifest_write

    folder = tmp_path / "manifest"
    manifest_write(
        folder,
        [
            TrainingExample(
                path=a.local_path,
                caption=f"{a.title} {a.keywords[0]}",
                contributor=f"raw credit {a.contributor.name_key}",
                asset_id=a.pk,
            )
            for a in training_assets
        ],
    )
    return folder


@pytest.fixture
def trained_model(manifest_folder):
    from generator.services import generator_model_start, generator_model_train

    model = generator_model_start(manifest_ref=str(manifest_folder))
    return generator_model_train(model=model)


@pytest.fixture
def operator():
    return OperatorFactory(username="operator")


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("member", password="x")
