"""The registry snapshot streamed from the database: the same rows the opt-out registry lists, as of the cut-off,
in batches that never hold the whole registry as Python rows."""

import pyarrow as pa
import pytest
from django.utils import timezone

from core.exceptions import ApplicationError
from optout import registry, services
from optout.models import ClaimStatus
from tests.core.factories import OperatorFactory, UserFactory
from tests.optout.factories import DomainClaimFactory
from tests.provenance.factories import AssetFactory
from tests.training_filter.conftest import write_manifest
from training_filter import sources
from training_filter.models import ManifestBuild

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_batches(settings, monkeypatch):
    settings.MANIFEST_REGISTRY_SOURCE = "optout.registry.registry_rows"
    monkeypatch.setattr(sources, "SNAPSHOT_BATCH_ROWS", 3)


def snapshot_rows(as_of, input_ref: str) -> tuple[list[tuple], int]:
    build = ManifestBuild(input_kind=ManifestBuild.InputKind.PARQUET, input_ref=input_ref, as_of=as_of)
    batches = list(sources.registry_snapshot_batches(build))
    table = pa.Table.from_batches(batches)
    return sorted(zip(*(table.column(n).to_pylist() for n in table.column_names), strict=True)), len(batches)


def test_the_streamed_snapshot_lists_what_the_registry_lists_at_the_cutoff(tmp_path):
    manifest = str(write_manifest(tmp_path / "in.parquet", [{"key": "k", "url": "https://x.example/a.png"}]))
    artist, operator = UserFactory(username="owner"), OperatorFactory(username="reviewer")
    works = [AssetFactory(url=f"https://WWW.Art.Example.org/works/{i}.png/") for i in range(3)]
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[w.pk for w in works[:2]])
    DomainClaimFactory(artist=artist, domain="art.example.org", status=ClaimStatus.VERIFIED)
    domain, _ = services.optout_create(artist=artist, scope="domain", domain="art.example.org")
    before = timezone.now()
    services.optout_approve(optout=optout, operator=operator)
    after = timezone.now()

    expected = sorted(
        (r.kind, r.key, r.reason, r.rule, str(r.optout_id)) for r in registry.registry_rows(as_of=after)
    )
    rows, batches = snapshot_rows(after, manifest)
    assert rows == expected and batches == -(-len(expected) // 3)
    assert ("url", "art.example.org/works/0.png", f"artist opt-out #{optout.pk} (works)") in {
        row[:3] for row in rows
    }
    assert ("domain", "art.example.org", "optout-domain", str(domain.pk)) in {
        (row[0], row[1], row[3], row[4]) for row in rows
    }
    assert {row[4] for row in snapshot_rows(before, manifest)[0]} == {str(domain.pk)}


def registry_missing_labels(*, as_of):
    """The registry as read when an opt-out became active between the keys' read and the labels' read."""
    rows = registry.registry_rows(as_of=as_of)
    return registry.Registry(keys=rows.keys, labels=rows.labels.none())


def test_a_key_without_its_opt_outs_label_fails_the_snapshot_with_a_clear_error(settings, tmp_path):
    manifest = str(write_manifest(tmp_path / "in.parquet", [{"key": "k", "url": "https://x.example/a.png"}]))
    artist, operator = UserFactory(username="owner"), OperatorFactory(username="reviewer")
    work = AssetFactory(url="https://art.example.org/w.png")
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
    services.optout_approve(optout=optout, operator=operator)
    settings.MANIFEST_REGISTRY_SOURCE = "tests.training_filter.test_registry_snapshot.registry_missing_labels"

    with pytest.raises(ApplicationError, match="changed while it was read"):
        snapshot_rows(timezone.now(), manifest)
