"""Schemathesis against the OpenAPI schema (/api/schema/) of the opt-out endpoints: no input makes a 5xx.
Bounded (a few examples per operation) so it stays a CI test, not a fuzzing campaign.

Driven by hand (operation strategies + hypothesis) because schemathesis's lazy pytest fixture loader does not
work with this pytest version (it reads `Function._nodeid`)."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from knox.models import AuthToken
from schemathesis.checks import not_a_server_error

from tests.core.factories import UserFactory
from tests.provenance.factories import AssetFactory

OPTOUT_PATHS = r"^/api/(optouts|claims|check|auth)"
EXAMPLES_PER_OPERATION = 8


@pytest.fixture
def wsgi_schema(db, monkeypatch):
    from config.wsgi import application
    from optout import verification

    # no network from a fuzzed domain claim
    monkeypatch.setattr(verification, "fetch_http", lambda url: "")
    monkeypatch.setattr(verification, "resolve_txt", lambda name: [])
    # as Django's test client does: the WSGI app must not close the test's transaction-bound connection
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", application).include(path_regex=OPTOUT_PATHS)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def test_no_generated_input_makes_a_server_error(wsgi_schema):
    AssetFactory()
    token = AuthToken.objects.create(user=UserFactory(username="fuzzer"))[1]
    operations = [result.ok() for result in wsgi_schema.get_all_operations()]
    assert len(operations) >= 14, [op.label for op in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=[not_a_server_error])

        run()
