"""The OpenAPI schema is complete and true: drf-spectacular builds it with no warning and it validates, and
schemathesis, over every operation, gets no server error and only answers the schema documents (status code,
content type, body).

Schemathesis is driven by hand (operation strategies + hypothesis) because its lazy pytest fixture loader does not
work with this pytest version (it reads `Function._nodeid`). Bounded to a few examples per operation so it stays
a CI test of a minute or two, not a fuzzing campaign."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
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

from optout import services as optout_services
from provenance.models import IngestRun
from tests.core.factories import OperatorFactory, UserFactory
from tests.optout.conftest import search_stack  # noqa: F401 (fixture: the fake encoder and a private index)
from tests.optout.factories import ContributorClaimFactory, DomainClaimFactory
from tests.provenance.factories import AssetFactory, ContributorFactory
from training_filter.models import ManifestBuild
from websignals.models import SignalCrawl

# examples per operation: input that fits the schema, input that does not, and input naming objects that exist
EXAMPLES = {"positive": 4, "negative": 3, "existing": 3}
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


def _fuzz(
    operation,
    headers: dict[str, str],
    mode: GenerationMode,
    answered: dict[str, set[int]],
    path_parameters=None,
) -> None:
    examples = EXAMPLES["existing" if path_parameters else str(mode)]

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        answered.setdefault(operation.label, set()).add(response.status_code)

    run()


def _published_build(root: Path) -> ManifestBuild:
    (root / "data").mkdir(parents=True)
    pq.write_table(pa.table({"key": ["a", "b"]}), root / "data" / "part-00000.parquet")
    (root / "manifest.json").write_text('{"format": "provenant-manifest/1"}')
    return ManifestBuild.objects.create(
        status=ManifestBuild.Status.PUBLISHED, input_kind="collection", input_ref="fuzz", as_of=timezone.now(),
        output_path=str(root),
    )  # fmt: skip


def _real_objects(operator, tmp_path: Path) -> dict[str, dict[str, object]]:
    """Path parameters naming objects that exist, by path prefix: the second pass reaches the views' 2xx code."""
    artist = UserFactory(username="fuzz-artist")
    asset = AssetFactory()
    optout, _ = optout_services.optout_create(artist=artist, scope="works", asset_ids=[asset.pk])
    collection = asset.collection
    build = _published_build(tmp_path / "build")
    return {
        "/api/assets/": {"id": asset.pk},
        "/api/contributors/": {"id": ContributorFactory().pk},
        "/api/ingest-runs/": {"id": IngestRun.objects.create(collection=collection, path="/fuzz").pk},
        "/api/optouts/": {"optout_id": optout.pk},
        "/api/claims/domains/": {"claim_id": DomainClaimFactory(artist=operator).pk},
        "/api/claims/contributors/": {"claim_id": ContributorClaimFactory(artist=artist).pk},
        "/api/manifests/builds/": {"build_id": build.pk, "name": "manifest.json"},
        "/api/signals/crawls/": {"crawl_id": SignalCrawl.objects.create(source="fuzz", max_age_s=60).pk},
        "/api/auth/tokens/": {"token_key": AuthToken.objects.create(user=operator)[0].token_key},
    }


def test_every_operation_answers_as_documented_and_never_with_a_server_error(wsgi_schema, tmp_path):
    operator = OperatorFactory(username="fuzz-operator")
    real = _real_objects(operator, tmp_path)
    operations = [result.ok() for result in wsgi_schema.get_all_operations()]
    assert len(operations) >= 40, [op.label for op in operations]
    failures, answered = {}, {}

    def fuzz(operation, mode: GenerationMode, path_parameters=None) -> None:
        # a token of its own: the rotate and revoke operations end the token they are called with
        headers = {"Authorization": f"Token {AuthToken.objects.create(user=operator)[1]}"}
        try:
            _fuzz(operation, headers, mode, answered, path_parameters)
        except Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE, operation.label  # nothing in it can be made invalid
        except (Exception, BaseExceptionGroup) as exc:  # one operation's failure must not hide the others'
            failures[f"{operation.label} ({mode}, {path_parameters})"] = f"{type(exc).__name__}: {exc}"[:3000]

    for operation in operations:
        fuzz(operation, GenerationMode.POSITIVE)
        fuzz(operation, GenerationMode.NEGATIVE)
        names = {p.name for p in operation.path_parameters}
        for prefix, values in real.items():
            if names and operation.path.startswith(prefix):
                fuzz(operation, GenerationMode.POSITIVE, {k: v for k, v in values.items() if k in names})
    assert not failures, "\n\n".join(f"{label}\n{why}" for label, why in failures.items())
    assert {op.label for op in operations} <= set(answered)
    # the objects behind the path parameters were reached, not only 404s
    for label in ["GET /api/optouts/{optout_id}/", "GET /api/manifests/builds/{build_id}/files/{name}/"]:
        assert 200 in answered[label], (label, answered[label])
    print({label: sorted(codes) for label, codes in answered.items()})  # shown with -s: what was reached
