from tests.core.conftest import connects, sites  # noqa: F401 (fixtures: loopback sites, recorded connects)
