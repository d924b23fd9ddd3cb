"""`manage.py build_manifest --input`: shards filtered by parallel threads give the bytes one thread gives, and a
shard that fails in a worker thread fails the build instead of leaving it running."""

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.training_filter.conftest import write_manifest
from tests.training_filter.test_builds import ROWS, registry, tree_digest  # noqa: F401 (a fixture)
from training_filter.models import ManifestBuild, ManifestShard

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("registry")]
AS_OF = "2030-01-01T00:00:00+00:00"


@pytest.fixture
def sharded(settings, tmp_path) -> Path:
    """Three files of three row groups each; shards of six rows, so several shards per file."""
    settings.MANIFEST_SHARD_ROWS = 6
    for part in range(3):
        rows = [{**row, "key": f"{part}-{row['key']}"} for row in ROWS]
        write_manifest(tmp_path / "input" / f"part-{part}.parquet", rows)
    return tmp_path / "input"


def cli_build(folder: Path, threads: int) -> ManifestBuild:
    call_command("build_manifest", "--input", str(folder), "--as-of", AS_OF, "--threads", str(threads))
    return ManifestBuild.objects.order_by("-id").first()


def test_parallel_shard_threads_publish_the_same_bytes_as_one_thread(manifest_dir, sharded):
    one, two = cli_build(sharded, 1), cli_build(sharded, 2)
    assert ManifestShard.objects.filter(build=two).count() == 6
    assert two.status == "published" and two.rows_in == 3 * len(ROWS)
    assert tree_digest(Path(one.output_path)) == tree_digest(Path(two.output_path))
    assert two.removed == one.removed and two.rows_out == one.rows_out


def test_a_shard_failing_in_a_worker_thread_fails_the_build(manifest_dir, sharded, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    from training_filter.pipeline import shard

    monkeypatch.setattr(shard, "filter_shard", boom)
    with pytest.raises(CommandError, match="disk full"):
        cli_build(sharded, 2)
    build = ManifestBuild.objects.get()
    assert build.status == "failed" and "disk full" in build.error
