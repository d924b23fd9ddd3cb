import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.optout.factories import OperatorFactory, UserFactory
from tests.websignals.conftest import connects, sites  # noqa: F401 (fixtures: loopback sites, recorded connects)


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
