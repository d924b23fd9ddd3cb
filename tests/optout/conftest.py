import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.core.conftest import connects, sites  # noqa: F401 (fixtures: loopback sites, recorded connects)
from tests.core.factories import OperatorFactory, UserFactory


@pytest.fixture(autouse=True)
def _optout_settings(settings):
    # tests that are not about throttling are not throttled; the throttle test switches it back on
    settings.PROVENANT_THROTTLE_ENABLED = False
    settings.OPTOUT_VERIFY_SCHEME = "http"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        _row, token = AuthToken.objects.create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def artist(db):
    return UserFactory(username="owner")


@pytest.fixture
def other_artist(db):
    return UserFactory(username="stranger")


@pytest.fixture
def operator(db):
    return OperatorFactory(username="reviewer")


@pytest.fixture
def consumer_files(settings, tmp_path):
    """Where thumbnails, works' pixels and manifest builds are written: this test's own folder."""
    settings.DATA_DIR = tmp_path / "data"
    settings.MANIFEST_DIR = tmp_path / "manifests"


@pytest.fixture
def search_stack(settings, tmp_path):
    """The fake encoder, an index in this test's folder, and no hash table or vectors cached from another test."""
    from embeddings.encoders.factory import get_encoder
    from embeddings.search.stores import stores_reset

    settings.CLIP_MODEL = "fake"
    settings.PROVENANT_INDEX_DIR = tmp_path / "index"
    get_encoder.cache_clear()
    stores_reset()
    yield
    get_encoder.cache_clear()
    stores_reset()
