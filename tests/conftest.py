"""Shared fixtures. App-specific fixtures live in tests/<app>/conftest.py."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
OPENCLIPART_FIXTURE = FIXTURES / "openclipart"


@pytest.fixture(autouse=True)
def _registry_caches_forgotten():
    """Each test's database starts again at the same ids and clock: keys a process held must not carry over."""
    from optout import exclusions, published_keys

    published_keys.forget()
    exclusions.forget()


@pytest.fixture
def openclipart_dir() -> Path:
    return OPENCLIPART_FIXTURE


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
