"""Training sets as operators have them: img2dataset's three output formats (written by the real img2dataset
1.47.0, committed under tests/fixtures/img2dataset), webdataset shards (webdataset.ShardWriter), a Hugging Face
`datasets` Image Parquet and a LAION-style metadata Parquet."""

import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from core.exceptions import ApplicationError
from provenance import services
from provenance.models import Asset, IngestRun, IngestShard, Signal
from tests.dataset_tools import drawings, write_hf_parquet, write_webdataset

pytestmark = pytest.mark.django_db
IMG2DATASET = Path(__file__).resolve().parents[1] / "fixtures" / "img2dataset"


def ingest(*paths, collection="set", **kwargs) -> IngestRun:
    run = services.ingest_run_create(paths=[str(p) for p in paths], collection_name=collection, **kwargs)
    return services.ingest_run_execute(run_id=run.id, workers=1)


def downloaded_rows(folder: Path) -> dict[str, dict]:
    """img2dataset's own record of the download: its shard Parquet, by key."""
    table = pq.read_table(next(folder.glob("*.parquet")), columns=["key", "url", "caption", "author", "status",
                                                                   "sha256", "error_message"])  # fmt: skip
    return {row["key"]: row for row in table.to_pylist()}


@pytest.mark.parametrize(
    ("output_format", "layout"),
    [("files", "img2dataset-files"), ("webdataset", "webdataset"), ("parquet", "img2dataset-parquet")],
)
def test_img2dataset_output_is_ingested_with_its_images_keys_captions_and_authors(output_format, layout):
    folder = IMG2DATASET / output_format
    rows = downloaded_rows(folder)

    run = ingest(folder)

    assert (run.layout, run.status, run.new, run.failed) == (layout, "done", 3, 0)
    assert run.not_downloaded == {"failed_to_download": 2} and run.sha256_mismatches == 0
    assert Asset.objects.count() == 3
    for asset in Asset.objects.all():
        row = rows[asset.key]
        assert row["status"] == "success"
        assert (asset.url, asset.caption, asset.contributor.display_name) == (row["url"], row["caption"],
                                                                              row["author"])  # fmt: skip
        data = Path(asset.local_path).read_bytes()
        assert asset.sha256 == hashlib.sha256(data).hexdigest() == row["sha256"]
        assert asset.phash is not None and len(asset.pdq) == 64 and asset.format == "JPEG"
        assert asset.original_width == asset.width and asset.exif == {} and not asset.url_only
        assert asset.source == f"00000/{asset.key}"


@pytest.mark.parametrize("output_format", ["files", "webdataset", "parquet"])
def test_a_second_ingest_of_an_img2dataset_output_adds_nothing(output_format):
    first = ingest(IMG2DATASET / output_format)
    second = ingest(IMG2DATASET / output_format)

    assert (first.new, second.new, second.skipped, second.failed) == (3, 0, 3, 0)
    assert Asset.objects.count() == 3 and Signal.objects.filter(url__gt="").count() == 1


def test_the_same_download_in_two_formats_names_its_works_alike():
    ingest(IMG2DATASET / "webdataset")
    again = ingest(IMG2DATASET / "parquet")

    assert (again.new, again.skipped) == (0, 3)


def test_rows_img2dataset_could_not_download_are_counted_not_works_and_a_refusal_is_a_signal():
    rows = downloaded_rows(IMG2DATASET / "webdataset")
    refused = next(r for r in rows.values() if "X-Robots-Tag" in (r["error_message"] or ""))
    missing = next(r for r in rows.values() if "404" in (r["error_message"] or ""))

    ingest(IMG2DATASET / "webdataset", refused_directives="noai, noimageai")

    assert not Asset.objects.filter(url__in=[refused["url"], missing["url"]]).exists()
    signal = Signal.objects.get(url=refused["url"])
    assert (signal.kind, signal.value, signal.asset, signal.domain) == ("x_robots_tag", "noai, noimageai", None,
                                                                        "")  # fmt: skip
    assert "disallowed by X-Robots-Tag" in signal.location
    assert not Signal.objects.filter(url=missing["url"]).exists()


def test_one_img2dataset_parquet_shard_file_is_ingested_with_its_image_bytes():
    run = ingest(IMG2DATASET / "parquet" / "00000.parquet")

    assert (run.layout, run.new) == ("img2dataset-parquet", 3)
    assert not Asset.objects.filter(sha256="").exists() and not Asset.objects.filter(phash=None).exists()
    assert set(Asset.objects.values_list("key", flat=True)) == {"00000000", "00000001", "00000003"}


def test_webdataset_shards_from_shardwriter_are_read_by_glob_one_shard_each(tmp_path):
    works = drawings(5, side=128)
    write_webdataset(tmp_path / "wds", works, per_shard=2)

    run = ingest(f"{tmp_path / 'wds'}/*.tar")

    assert (run.layout, run.shards.count(), run.new) == ("webdataset", 3, 5)
    assert set(run.shards.values_list("status", flat=True)) == {"done"}
    stored = {Path(a.local_path).read_bytes() for a in Asset.objects.all()}
    assert stored == {w.data for w in works}


def test_a_datasets_image_parquet_is_ingested_with_its_images_and_extra_columns(tmp_path):
    works = drawings(3, side=128)
    path = write_hf_parquet(tmp_path / "hf" / "data" / "train-00000-of-00001.parquet", works)

    run = ingest(tmp_path / "hf")

    assert (run.layout, run.new, run.failed) == ("hf-datasets", 3, 0)
    asset = Asset.objects.get(key="hf0001")
    assert asset.sha256 == hashlib.sha256(works[1].data).hexdigest()
    assert (asset.caption, asset.contributor.display_name) == (works[1].caption, works[1].author)
    assert asset.extra == {"id": "hf0001"} and asset.source == f"{path.parent.name}/{path.stem}/hf0001"
    assert ingest(tmp_path / "hf").new == 0


def test_a_metadata_only_parquet_becomes_url_only_works_with_its_extra_columns(tmp_path):
    import pyarrow as pa

    pq.write_table(pa.table({"url": ["https://art.example.org/a.jpg", "https://b.example.net/b.png"],
                             "caption": ["a", "b"], "similarity": [0.31, 0.29], "NSFW": ["UNLIKELY", "UNLIKELY"]}),
                   tmp_path / "laion.parquet")  # fmt: skip

    run = ingest(tmp_path / "laion.parquet")

    assert (run.layout, run.new) == ("manifest", 2)
    asset = Asset.objects.get(url="https://art.example.org/a.jpg")
    assert asset.url_only and not asset.sha256 and asset.domain == "art.example.org"
    assert asset.extra == {"similarity": 0.31, "NSFW": "UNLIKELY"}


def test_an_unknown_layout_is_refused_with_the_layouts_it_knows(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")

    with pytest.raises(ApplicationError) as error:
        services.ingest_run_create(path=str(tmp_path), collection_name="set")

    for layout in (
        "webdataset",
        "img2dataset-files",
        "img2dataset-parquet",
        "hf-datasets",
        "manifest",
        "folder",
    ):
        assert layout in error.value.message


def test_absolute_local_paths_are_read_under_an_allowed_root_only(tmp_path):
    images, manifest_dir, outside = tmp_path / "images", tmp_path / "manifests", tmp_path / "elsewhere"
    for folder in (images, manifest_dir, outside):
        folder.mkdir()
    Image.new("RGB", (64, 64), "red").save(images / "a.jpg")
    Image.new("RGB", (64, 64), "blue").save(outside / "secret.jpg")
    (images / "link.jpg").symlink_to(outside / "secret.jpg")
    lines = [{"url": f"https://x.example/{n}", "local_path": str(images / n)} for n in ("a.jpg", "link.jpg")]
    (manifest_dir / "m.jsonl").write_text("\n".join(json.dumps(line) for line in lines))

    refused = ingest(manifest_dir / "m.jsonl", collection="one")
    allowed = ingest(manifest_dir / "m.jsonl", collection="two", allow_roots=[str(images)])

    assert (refused.new, refused.failed) == (0, 2)
    assert "outside the allowed roots" in refused.errors[0]["reason"]
    assert (allowed.new, allowed.failed) == (1, 1)  # the link leads out of the root: never followed
    assert (
        Asset.objects.get(collection__name="two").sha256
        == hashlib.sha256((images / "a.jpg").read_bytes()).hexdigest()
    )


def test_a_sha256_column_that_does_not_match_the_bytes_is_reported(tmp_path):
    works = drawings(2, side=96)
    shard = tmp_path / "00000.tar"
    with tarfile.open(shard, "w") as tar:
        for number, work in enumerate(works):
            claimed = "0" * 64 if number == 0 else hashlib.sha256(work.data).hexdigest()
            meta = json.dumps({"key": f"k{number}", "sha256": claimed, "status": "success"}).encode()
            for name, data in ((f"k{number}.jpg", work.data), (f"k{number}.json", meta)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    run = ingest(shard)

    assert (run.new, run.sha256_mismatches) == (2, 1)
    assert Asset.objects.get(key="k0").extra == {"dataset_sha256": "0" * 64}
    assert any("sha256 column differs" in e["reason"] for e in run.errors)


def test_a_decompression_bomb_in_a_tar_is_refused_and_the_shard_goes_on(tmp_path, settings):
    settings.PROVENANT_MAX_IMAGE_PIXELS = 1_000_000
    bomb = io.BytesIO()
    Image.new("1", (4000, 4000)).save(bomb, format="PNG")
    works = drawings(1, side=96)
    write_webdataset(tmp_path, works, per_shard=10)
    with tarfile.open(tmp_path / "00001.tar", "w") as tar:
        info = tarfile.TarInfo("bomb.png")
        info.size = len(bomb.getvalue())
        tar.addfile(info, io.BytesIO(bomb.getvalue()))

    run = ingest(tmp_path)

    assert (run.status, run.new, run.failed) == ("done", 1, 1)
    assert "decompression bomb" in run.errors[0]["reason"]


def test_a_truncated_tar_fails_its_shard_only_and_the_run_says_which(tmp_path):
    write_webdataset(tmp_path, drawings(4, side=96), per_shard=2)
    broken = tmp_path / "00001.tar"
    broken.write_bytes(broken.read_bytes()[:700])

    run = ingest(tmp_path)

    assert run.status == "failed" and run.new >= 2
    assert IngestShard.objects.get(run=run, index=0).status == "done"
    assert IngestShard.objects.get(run=run, index=1).status == "failed"
    assert any(e["item"] == str(broken) for e in run.errors)


def test_a_killed_ingest_resumes_where_it_stopped_and_reads_no_row_twice(tmp_path, monkeypatch):
    write_webdataset(tmp_path, drawings(6, side=96), per_shard=100)
    monkeypatch.setattr(services, "BATCH", 2)
    seen: list[str] = []
    real_read_many = services.reader.read_many

    def read_many(self, items):
        if len(seen) == 4 and not getattr(read_many, "killed", False):
            read_many.killed = True
            raise KeyboardInterrupt  # the operator's Ctrl-C, or a killed worker
        seen.extend(i.source for i in items)
        return real_read_many(self, items)

    monkeypatch.setattr(services.reader, "read_many", read_many)
    run = services.ingest_run_create(path=str(tmp_path), collection_name="set")
    with pytest.raises(KeyboardInterrupt):
        services.ingest_run_execute(run_id=run.id, workers=1)
    run.refresh_from_db()
    assert (run.status, run.new, run.shards.get().rows_done) == ("failed", 4, 4)

    run = services.ingest_run_execute(run_id=run.id, workers=1)

    assert (run.status, run.processed, run.new, run.skipped) == ("done", 6, 6, 0)
    assert len(seen) == len(set(seen)) == 6


def test_the_celery_tasks_ingest_one_shard_each_and_a_second_run_changes_nothing(tmp_path):
    from provenance.tasks import ingest_run_task

    write_webdataset(tmp_path, drawings(4, side=96), per_shard=2)
    run = services.ingest_run_create(path=str(tmp_path), collection_name="set")

    ingest_run_task.delay(run.id)
    ingest_run_task.delay(run.id)

    run.refresh_from_db()
    assert (run.status, run.new, run.processed) == ("done", 4, 4)
    assert list(run.shards.values_list("status", "rows_done")) == [("done", 2), ("done", 2)]


def test_a_csv_of_an_img2dataset_download_with_absolute_paths_is_read_from_its_own_folder(tmp_path):
    folder = Path(shutil.copytree(IMG2DATASET / "files", tmp_path / "download"))
    rows = pq.read_table(folder / "00000.parquet").to_pylist()
    lines = ["url,caption,key,status,local_path"] + [
        f"{r['url']},{r['caption']},{r['key']},{r['status']},"
        + (str(folder / "00000" / f"{r['key']}.jpg") if r["status"] == "success" else "")
        for r in rows
    ]
    (folder / "rows.csv").write_text("\n".join(lines) + "\n")

    run = ingest(folder / "rows.csv")

    assert (run.layout, run.new, run.failed, run.not_downloaded) == (
        "manifest",
        3,
        0,
        {"failed_to_download": 2},
    )
    assert not Asset.objects.filter(sha256="").exists()


def test_the_command_names_the_layout_and_counts_rows_by_status(capsys):
    from django.core.management import call_command

    call_command("ingest", str(IMG2DATASET / "webdataset"), "--collection", "cli", "--workers", "1")

    out = capsys.readouterr().out
    assert "layout: webdataset, 1 shard(s)" in out
    assert "ingest done (webdataset): 5 seen, 3 new, 0 skipped, 0 failed; not downloaded (not works): " in out
    assert "2 failed_to_download" in out


def test_a_tar_shard_is_streamed_member_by_member_never_held_whole(tmp_path):
    import os
    import tracemalloc

    from provenance.datasets.readers import iter_records

    shard = tmp_path / "00000.tar"
    with tarfile.open(shard, "w") as tar:
        for number in range(48):  # 48 MB of incompressible "images"
            data = os.urandom(1 << 20)
            info = tarfile.TarInfo(f"{number:09d}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    tracemalloc.start()
    seen = sum(len(record.data) for record in iter_records("webdataset", str(shard), tmp_path, 0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert seen == 48 << 20
    assert peak < 6 << 20  # a few members at most, whatever the shard's size


def test_the_command_fails_a_run_with_a_broken_shard_and_resumes_it_once_repaired(tmp_path, capsys):
    from django.core.management import CommandError, call_command

    write_webdataset(tmp_path, drawings(4, side=96), per_shard=2)
    broken = tmp_path / "00001.tar"
    good = broken.read_bytes()
    broken.write_bytes(good[:700])

    with pytest.raises(CommandError, match=r"resume it with `manage.py ingest --resume \d+`"):
        call_command("ingest", str(tmp_path), "--collection", "cli", "--workers", "1")
    broken.write_bytes(good)
    run = IngestRun.objects.get()
    call_command("ingest", "--resume", str(run.id), "--workers", "1")

    run.refresh_from_db()
    assert (run.status, run.new, Asset.objects.count()) == ("done", 4, 4)
