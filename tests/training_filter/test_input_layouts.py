"""build_manifest --input on the Parquet that operators have: img2dataset's shard Parquet (beside tars, folders,
or holding the image bytes), pHash in any of its three usual forms, per-row signal columns, and bad columns
answered with the file, the column and the first bad row."""

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from provenance.hashing import int64_to_unsigned, phash_hex
from tests.training_filter.conftest import FakeRegistryRow
from training_filter import services
from training_filter.models import ManifestBuild

pytestmark = pytest.mark.django_db
IMG2DATASET = Path(__file__).resolve().parents[1] / "fixtures" / "img2dataset"
NEAR = -0x0123456789ABCDEF  # a pHash with the top bit set: negative as int64, > 2**63 as uint64


def build(path: Path, django_capture_on_commit_callbacks) -> ManifestBuild:
    with django_capture_on_commit_callbacks(execute=True):
        created = services.manifest_build_create(input_path=str(path))
    created.refresh_from_db()
    return created


def removals(build_row: ManifestBuild) -> dict[str, dict]:
    table = pq.read_table(Path(build_row.output_path) / "removals.parquet")
    return {row["key"]: row for row in table.to_pylist()}


def phash_table(form: str) -> pa.Table:
    values = [NEAR ^ 0b1, 7]  # one bit from the registry's pHash, and one far from it
    column = {
        "int64": pa.array(values, pa.int64()),
        "uint64": pa.array([int64_to_unsigned(v) for v in values], pa.uint64()),
        "hex": pa.array([phash_hex(v) for v in values], pa.string()),
    }[form]
    return pa.table({"key": ["near", "far"], "url": ["https://a.example/1.jpg", "https://a.example/2.jpg"],
                     "phash": column})  # fmt: skip


@pytest.mark.parametrize("form", ["int64", "uint64", "hex"])
def test_phash_as_int64_uint64_or_16_hex_digits_finds_the_same_near_copy(
    form, tmp_path, manifest_dir, fake_registry, django_capture_on_commit_callbacks
):
    fake_registry.append(FakeRegistryRow("phash", str(NEAR), "my drawing", "phash", 7))
    pq.write_table(phash_table(form), tmp_path / "m.parquet")

    done = build(tmp_path / "m.parquet", django_capture_on_commit_callbacks)

    assert done.status == "published", done.error
    assert list(removals(done)) == ["near"] and removals(done)["near"]["reason"] == "phash"


def test_per_row_signal_columns_take_their_rows_out(
    tmp_path, manifest_dir, fake_registry, django_capture_on_commit_callbacks
):
    pq.write_table(pa.table({
        "key": ["robots", "dmi", "allowed", "plain"],
        "url": [f"https://a.example/{n}.jpg" for n in range(4)],
        "x_robots_tag": ["noai, noimageai", None, "index, follow", None],
        "data_mining": [None, "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED", None, None],
    }), tmp_path / "m.parquet")  # fmt: skip

    done = build(tmp_path / "m.parquet", django_capture_on_commit_callbacks)

    assert done.status == "published", done.error
    assert set(removals(done)) == {"robots", "dmi"} and done.rows_out == 2
    assert {r["reason"] for r in removals(done).values()} == {"signal"}
    assert removals(done)["robots"]["rule"] and "noai" in removals(done)["robots"]["detail"]


@pytest.mark.parametrize(
    ("column", "values", "why"),
    [
        (
            "phash",
            ["00ff00ff00ff00ff", "00ff00ff00ff00ff", "not-a-hash"],
            "'not-a-hash' is not 16 hex digits",
        ),
        ("phash", [0.5, 1.5, 2.5], "type double is not a 64-bit pHash"),
        ("width", ["64", "64", "wide"], "'wide' is not an integer"),
        ("sha256", ["a" * 64, "B" * 64, "xyz"], "'xyz' is not 64 hex digits"),
        ("sha256", ["a" * 64, None, "a" * 63 + "g"], f"'{'a' * 63}g' is not 64 hex digits"),
        ("sha256", ["a" * 64, "0" * 64, "é" * 32], f"'{'é' * 32}' is not 64 hex digits"),  # 64 bytes
        ("sha256", ["a" * 64, "0" * 64, "a" * 65], f"'{'a' * 65}' is not 64 hex digits"),
    ],
)
def test_a_bad_column_fails_the_build_naming_the_file_column_and_first_bad_row(
    column, values, why, tmp_path, manifest_dir, fake_registry
):
    pq.write_table(pa.table({"key": ["a", "b", "c"], "url": [f"https://a.example/{n}" for n in "abc"],
                             column: values}), tmp_path / "bad.parquet")  # fmt: skip

    with pytest.raises(CommandError) as error:
        call_command("build_manifest", "--input", str(tmp_path / "bad.parquet"))

    first_bad = 1 if why.startswith("type") else 3
    expected = f"bad.parquet: column {column!r}, row {first_bad}: {why}"
    assert expected in str(error.value)
    failed = ManifestBuild.objects.get()
    assert failed.status == "failed" and expected in failed.error


@pytest.mark.parametrize("output_format", ["files", "webdataset", "parquet"])
def test_an_img2dataset_output_folder_is_read_by_its_shard_parquet_downloaded_rows_only(
    output_format, tmp_path, manifest_dir, fake_registry, django_capture_on_commit_callbacks
):
    folder = shutil.copytree(IMG2DATASET / output_format, tmp_path / output_format)
    statuses = pq.read_table(next(folder.glob("*.parquet")), columns=["status"]).column("status").to_pylist()
    wanted = next(
        r for r in pq.read_table(next(folder.glob("*.parquet"))).to_pylist() if r["status"] == "success"
    )
    fake_registry.append(FakeRegistryRow("sha256", wanted["sha256"], "my file", "sha256", 5))

    done = build(folder, django_capture_on_commit_callbacks)

    assert done.status == "published", done.error
    assert done.rows_in == statuses.count("success") == 3
    assert removals(done)[wanted["key"]]["reason"] == "sha256"


def test_a_url_that_refused_img2dataset_takes_that_url_out_of_other_manifests(
    tmp_path, manifest_dir, fake_registry, django_capture_on_commit_callbacks
):
    from provenance import services as ingest

    run = ingest.ingest_run_create(path=str(IMG2DATASET / "webdataset"), collection_name="set")
    ingest.ingest_run_execute(run_id=run.id, workers=1)
    refused = next(r for r in pq.read_table(IMG2DATASET / "webdataset" / "00000.parquet").to_pylist()
                   if "X-Robots-Tag" in (r["error_message"] or ""))  # fmt: skip
    pq.write_table(pa.table({"key": ["again", "other", "same-site"],
                            "url": [refused["url"], "https://a.example/x.jpg", refused["url"] + "?v=2"]}),
                   tmp_path / "laion.parquet")  # fmt: skip

    done = build(tmp_path / "laion.parquet", django_capture_on_commit_callbacks)

    assert done.status == "published", done.error
    assert list(removals(done)) == ["again"] and removals(done)["again"]["reason"] == "signal"
