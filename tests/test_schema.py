"""The OpenAPI schema is complete and true: drf-spectacular builds it with no warning and it validates, and
schemathesis, over every operation, gets no server error and only answers the schema documents (status code,
content type, body).

Schemathesis is driven by hand (operation strategies + hypothesis) because its lazy pytest fixture loader does not
work with this pytest version (it reads `Function._nodeid`). Bounded to a few examples per operation so it stays
a CI test of a minute or two, not a fuzzing campaign."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from knox.models import AuthToken
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.optout.conftest import search_stack  # noqa: F401 (fixture: the fake encoder and a private index)
from tests.optout.factories import AssetFactory, OperatorFactory

EXAMPLES_PER_OPERATION = 5  # per generation mode: input that fits the schema, and input that does not
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_schema_builds_without_warnings_and_validates(tmp_path):
    # --fail-on-warn turns every warning (and error) into a non-zero exit: SystemExit here
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3")


@pytest.fixture
def wsgi_schema(db, monkeypatch, search_stack):  # noqa: F811
    from config.wsgi import application
    from optout import verification

    # no network from a fuzzed domain claim
    monkeypatch.setattr(verification, "fetch_http", lambda url: "")
    monkeypatch.setattr(verification, "resolve_txt", lambda name: [])
    # as Django's test client does: the WSGI app must not close the test's transaction-bound connection
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _fuzz(operation, headers: dict[str, str], mode: GenerationMode, calls: list[str]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        calls.append(operation.label)
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_every_operation_answers_as_documented_and_never_with_a_server_error(wsgi_schema):
    AssetFactory()
    operator = OperatorFactory(username="fuzz-operator")
    token = AuthToken.objects.create(user=operator)[1]
    operations = [result.ok() for result in wsgi_schema.get_all_operations()]
    assert len(operations) >= 40, [op.label for op in operations]
    failures, calls = {}, []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, {"Authorization": f"Token {token}"}, mode, calls)
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.label  # nothing in it can be made invalid
            except (
                Exception,
                BaseExceptionGroup,
            ) as exc:  # one operation's failure must not hide the others'
                failures[f"{operation.label} ({mode})"] = f"{type(exc).__name__}: {exc}"[:3000]
    assert not failures, "\n\n".join(f"{label}\n{why}" for label, why in failures.items())
    assert {op.label for op in operations} <= set(calls)
