"""Celery beat rebuilds a published input only when the opt-out state changed after its last cut-off."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.training_filter.conftest import write_manifest
from tests.training_filter.test_builds import ROWS, run_build
from training_filter import services
from training_filter.models import ManifestBuild

pytestmark = pytest.mark.django_db


def test_beat_rebuilds_only_after_an_optout_change(manifest_dir, fake_registry, tmp_path, settings):
    from provenance.models import Signal

    assert "manifest-rebuild-when-optouts-change" in settings.CELERY_BEAT_SCHEDULE
    Signal.objects.create(
        kind="ai_txt", domain="old.example", value="User-agent: *\nDisallow: /", location="ai.txt"
    )
    published = run_build(
        write_manifest(tmp_path / "in.parquet", ROWS), timezone.now() + timedelta(seconds=1)
    )
    assert services.manifest_builds_refresh() == []  # nothing changed since its cut-off
    ManifestBuild.objects.filter(pk=published.pk).update(as_of=timezone.now() - timedelta(hours=1))
    rebuilt = services.manifest_builds_refresh()
    assert [(b.input_ref, b.trigger) for b in rebuilt] == [(published.input_ref, "beat")]
    assert services.manifest_builds_refresh() == []  # one rebuild in flight is enough
