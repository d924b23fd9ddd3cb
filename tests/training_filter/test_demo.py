"""The demo: real openclipart works ingested by the provenance service, real opt-outs through the opt-out app's
services and registry. The published manifest excludes every work with an active opt-out, a near-copy of one
(re-encoded, its own bytes and URL) and every work whose signal denies training; the removal list says why."""

import io
from pathlib import Path

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from django.contrib.auth import get_user_model

from tests.core.factories import OperatorFactory
from training_filter import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(openclipart_dir, tmp_path):
    from provenance import services as ingest
    from provenance.hashing import compute_hashes
    from provenance.imaging import load_rgb
    from provenance.models import Asset, Signal

    run = ingest.ingest_run_create(path=str(openclipart_dir / "animals"), collection_name="demo")
    ingest.ingest_run_execute(run_id=run.id, workers=1)
    assets = list(Asset.objects.filter(collection__name="demo", phash__isnull=False).order_by("id"))
    assert len(assets) >= 4  # three to remove, the rest must stay
    opted, copied, signalled = assets[0], assets[1], assets[2]
    # a re-hosted, re-encoded copy of an opted-out work: different bytes and URL, nearly the same pHash
    image = load_rgb(Path(copied.local_path).read_bytes()).image
    buffer = io.BytesIO()
    image.resize((image.width * 9 // 10, image.height * 9 // 10)).save(buffer, format="JPEG", quality=70)
    jpeg = tmp_path / "copy.jpg"
    jpeg.write_bytes(buffer.getvalue())
    phash, pdq, quality = compute_hashes(load_rgb(buffer.getvalue()).image)
    copy = Asset.objects.create(
        collection=copied.collection, source="rehost/copy.jpg", url="https://mirror.example.net/copy.jpg",
        local_path=str(jpeg), sha256="f" * 64, phash=phash, pdq=pdq, title="uploaded copy",
    )  # fmt: skip
    Signal.objects.create(
        kind="iptc_data_mining", asset=signalled, value="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED",
        location="XMP plus:DataMining",
    )  # fmt: skip
    return {"opted": opted, "copied": copied, "copy": copy, "signalled": signalled}


def approve_optout(asset_ids: list[int]):
    from optout import services as optout

    user_model = get_user_model()
    artist = user_model.objects.create_user("artist", "a@example.org", "pw")
    operator = OperatorFactory(username="operator")
    optout_row, _ = optout.optout_create(artist=artist, scope="works", asset_ids=asset_ids, reason="mine")
    return optout.optout_approve(optout=optout_row, operator=operator)


def test_demo_manifest_excludes_optouts_their_near_copies_and_denied_signals(
    demo, manifest_dir, django_capture_on_commit_callbacks
):
    from provenance.models import Asset, Signal

    optout = approve_optout([demo["opted"].pk, demo["copied"].pk])
    assert optout.status == "active"
    with django_capture_on_commit_callbacks(execute=True):
        build = services.manifest_build_create(collection="demo")
    build.refresh_from_db()
    assert build.status == "published", build.error
    out = Path(build.output_path)
    kept = set(pads.dataset(out / "data").to_table().column("asset_id").to_pylist())
    removals = {r["key"]: r for r in pq.read_table(out / "removals.parquet").to_pylist()}
    key_of = {a.pk: a.key or str(a.pk) for a in Asset.objects.filter(collection__name="demo")}

    for work in ("opted", "copied"):
        assert demo[work].pk not in kept
        assert removals[key_of[demo[work].pk]]["optout_id"] == str(optout.pk)
    copy = removals[key_of[demo["copy"].pk]]
    assert demo["copy"].pk not in kept and copy["reason"] == "phash" and copy["optout_id"] == str(optout.pk)
    signal = removals[key_of[demo["signalled"].pk]]
    assert signal["reason"] == "signal" and signal["rule"]
    # every work with any denying signal the ingest found in the files is out too, and nothing else is
    denied = {s.asset_id for s in Signal.objects.filter(asset__isnull=False)}
    assert kept and not (kept & denied)
    assert len(kept) + len(removals) == len(key_of) == build.rows_in
    assert all(
        r["reason"] in ("url", "sha256", "asset", "signal", "phash", "domain") for r in removals.values()
    )
