"""The artist's whole path on a real training-set layout: img2dataset downloads works (and a re-encoded copy of
one and a byte-identical mirror of it, at other URLs) from a loopback server in its webdataset and parquet
formats; both are ingested and indexed; an uploaded, re-encoded crop of one work finds it; the artist opts it out;
build_manifest --input on the same img2dataset Parquet (with the pHash column a dedup step adds, as imagehash
writes it) removes that row (by its URL), the mirror by sha256 and the copy by pHash, with the reasons in
removals.parquet."""

import io
from pathlib import Path

import imagehash
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.dataset_tools import Work, download, drawings, serve
from tests.training_filter.test_demo import approve_optout

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_encoder(settings, tmp_path):
    from tests.embeddings.conftest import _fake_encoder

    yield from _fake_encoder(settings, tmp_path)


def reencoded(work: Work, scale: float, quality: int, crop: bool = False) -> bytes:
    image = Image.open(io.BytesIO(work.data)).convert("RGB")
    w, h = image.size
    if crop:
        image = image.crop((int(w * 0.08), int(h * 0.1), int(w * 0.85), int(h * 0.9)))
    image = image.resize((int(image.width * scale), int(image.height * scale)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def with_phash_column(shard: Path, target: Path) -> Path:
    """What an operator's dedup step adds: imagehash's pHash of each downloaded image, as 16 hex digits."""
    table = pq.read_table(shard)
    hashes = [None if data is None else str(imagehash.phash(Image.open(io.BytesIO(data))))
              for data in table.column("jpg").to_pylist()]  # fmt: skip
    target.parent.mkdir(parents=True)
    pq.write_table(table.append_column("phash", pa.array(hashes, pa.string())), target)
    return target


def test_a_work_from_an_img2dataset_download_is_found_opted_out_and_left_out_of_the_manifest(
    tmp_path, fake_encoder, manifest_dir, django_capture_on_commit_callbacks
):
    from embeddings.search.cascade import search_image_bytes
    from embeddings.services import index_collection
    from provenance import services as ingest
    from provenance.models import Asset
    from training_filter import services as builds

    works = drawings(6, side=320)
    mine = works[2]
    copy = Work("rehosted.jpg", reencoded(mine, 0.9, 70), "a copy", "someone else")
    mirror = Work("mirror.jpg", mine.data, "the same file", "a mirror")
    downloaded = [*works, copy, mirror]
    with serve({w.name: w.data for w in downloaded}) as base:
        for output_format in ("webdataset", "parquet"):
            download(downloaded, base, tmp_path / output_format, output_format)
    for output_format in ("webdataset", "parquet"):
        run = ingest.ingest_run_create(path=str(tmp_path / output_format), collection_name=output_format)
        run = ingest.ingest_run_execute(run_id=run.id, workers=1)
        assert (run.status, run.new, run.failed) == ("done", 8, 0)
    index_collection(collection_name="parquet")

    hits = search_image_bytes(reencoded(mine, 0.8, 75, crop=True), top_k=3)

    work = Asset.objects.get(collection__name="parquet", url__endswith=f"/{mine.name}")
    same_file = set(
        Asset.objects.filter(collection__name="parquet", sha256=work.sha256).values_list("pk", flat=True)
    )
    assert hits[0].asset_id in same_file and work.pk in {h.asset_id for h in hits}
    optout = approve_optout([work.pk])
    assert optout.status == "active"
    manifest = with_phash_column(
        tmp_path / "parquet" / "00000.parquet", tmp_path / "manifest" / "00000.parquet"
    )
    with django_capture_on_commit_callbacks(execute=True):
        build = builds.manifest_build_create(input_path=str(manifest.parent))
    build.refresh_from_db()
    assert build.status == "published", build.error
    rows = pq.read_table(Path(build.output_path) / "removals.parquet").to_pylist()
    reasons = {r["url"].rsplit("/", 1)[-1]: (r["reason"], r["optout_id"]) for r in rows}
    assert reasons == {mine.name: ("url", str(optout.pk)), mirror.name: ("sha256", str(optout.pk)),
                       copy.name: ("phash", str(optout.pk))}  # fmt: skip
    assert (build.rows_in, build.rows_out) == (8, 5)
