"""Fixtures for the tests that fetch from real HTTP servers on loopback (core.fetch and the apps that use it):
loopback sites the fetcher may reach, and every address a socket connects to."""

import socket

import pytest

from tests.core import sites as sites_module
from tests.core.sites import Sites


@pytest.fixture
def sites(settings):
    """Loopback sites; the fetcher may reach 127.0.0.0/8 only, and every connect() is recorded."""
    with Sites() as server:
        settings.FETCH_EXTRA_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        settings.FETCH_PORT_MAP = {"http": server.port, "https": server.port}
        settings.FETCH_RESOLVER = "tests.core.sites.resolve"
        settings.FETCH_HOST_INTERVAL_S = 0.0
        settings.FETCH_DEADLINE_S = 3.0
        sites_module.ANSWERS.clear()
        sites_module.CALLS.clear()
        yield server
        sites_module.ANSWERS.clear()


def serve(server: Sites, *hosts: str) -> None:
    for host in hosts:
        sites_module.ANSWERS[host] = [["127.0.0.1"]]


@pytest.fixture
def connects(monkeypatch):
    """Every address a socket connects to during the test."""
    seen: list[str] = []
    original = socket.socket.connect

    def connect(self, address):
        seen.append(address[0] if isinstance(address, tuple) else str(address))
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen
