import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from provenance import services
from provenance.models import Asset, Signal

pytestmark = pytest.mark.django_db


def ingest(path):
    run = services.ingest_run_create(path=str(path), collection_name="web")
    return services.ingest_run_execute(run_id=run.id, workers=1)


ROWS = [
    {"key": "000001", "url": "https://WWW.Example.com/art/Cat.png", "caption": "a cat", "author": "Ed Inker",
     "license": "CC-BY-4.0", "width": 640, "height": 480},
    {"key": "000002", "url": "http://images.example.org/dog.jpg?b=2&a=1", "caption": "a dog",
     "x_robots_tag": "noai, noimageai"},
    {"key": "000003", "url": "", "caption": "nothing to find"},
    {"key": "000004", "url": "ftp://example.com/x.png", "caption": "wrong scheme"},
    {"key": "000005", "url": "https://example.net/bird.png", "width": "wide"},
    {"key": "000006", "url": "https://example.net/escape.png", "local_path": "../../etc/passwd"},
]  # fmt: skip


def test_jsonl_manifest_rows_are_ingested_and_malformed_rows_reported(tmp_path):
    lines = [json.dumps(row) for row in ROWS] + ["{not json", "[1, 2]"]
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines))

    run = ingest(tmp_path / "manifest.jsonl")

    assert (run.status, run.new, run.failed) == ("done", 2, 6)
    reasons = " | ".join(e["reason"] for e in run.errors)
    for expected in ("neither url nor local path", "not an http(s) URL", "width is not a number",
                     "outside the allowed roots", "invalid JSON", "not a JSON object"):  # fmt: skip
        assert expected in reasons
    cat = Asset.objects.get(key="000001") if Asset.objects.filter(key="000001").exists() else None
    cat = cat or Asset.objects.get(source=ROWS[0]["url"])
    assert (cat.domain, cat.width, cat.contributor.display_name, cat.licence) == (
        "example.com",
        640,
        "Ed Inker",
        "CC-BY-4.0",
    )
    dog = Asset.objects.get(source=ROWS[1]["url"])
    assert Signal.objects.get(asset=dog).value == "noai, noimageai"


def test_parquet_manifest_with_local_files_is_hashed_and_idempotent(tmp_path):
    (tmp_path / "images").mkdir()
    for name, colour in (("a.jpg", "red"), ("b.jpg", "blue")):
        Image.new("RGB", (96, 96), colour).save(tmp_path / "images" / name)
    table = pa.table({
        "key": ["a", "b"],
        "url": ["https://cdn.example.com/a.jpg", "https://cdn.example.com/b.jpg"],
        "caption": ["red square", "blue square"],
        "local_path": ["images/a.jpg", "images/b.jpg"],
    })  # fmt: skip
    pq.write_table(table, tmp_path / "part-0.parquet")

    first = ingest(tmp_path / "part-0.parquet")
    second = ingest(tmp_path / "part-0.parquet")

    assert (first.new, second.new, second.skipped) == (2, 0, 2)
    red = Asset.objects.get(url="https://cdn.example.com/a.jpg")
    assert red.sha256 and red.phash is not None and red.caption == "red square" and red.format == "JPEG"


def test_csv_manifest_is_read(tmp_path):
    (tmp_path / "m.csv").write_text(
        "url,caption,key\nhttps://a.example/1.png,one,k1\nhttps://a.example/2.png,two,k2\n"
    )

    run = ingest(tmp_path / "m.csv")

    assert run.new == 2 and sorted(Asset.objects.values_list("caption", flat=True)) == ["one", "two"]


def test_an_unknown_manifest_format_is_a_clear_error(tmp_path):
    from core.exceptions import ApplicationError

    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(ApplicationError, match="not a layout we know. Known layouts: webdataset"):
        services.ingest_run_create(path=str(tmp_path / "m.xlsx"), collection_name="web")
