import json

import pytest

from provenance import services
from provenance.models import Signal
from tests.c2pa_signing import make_signer, signed_jpeg

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def signer():
    return make_signer("Ada Painter", "Ada Studio")


def test_a_c2pa_training_mining_assertion_signed_by_a_real_signer_yields_signals(tmp_path, signer):
    entries = {
        "c2pa.ai_generative_training": {"use": "notAllowed"},
        "c2pa.ai_training": {"use": "constrained", "constraint_info": "mailto:ada@example.org"},
    }
    (tmp_path / "harbour.jpg").write_bytes(signed_jpeg(entries, signer=signer))
    run = services.ingest_run_execute(
        run_id=services.ingest_run_create(path=str(tmp_path), collection_name="c2pa").id, workers=1
    )

    assert run.new == 1
    found = {json.dumps(json.loads(s.value), sort_keys=True): s for s in Signal.objects.all()}
    assert set(found) == {json.dumps({k: v}, sort_keys=True) for k, v in entries.items()}
    for signal in found.values():
        assert signal.kind == "c2pa_training_mining"
        assert "signed by Ada Painter (Ada Studio)" in signal.location
        assert "not on a trust list" in signal.location


def test_cawg_training_mining_assertions_are_read_too(tmp_path, signer):
    data = signed_jpeg(
        {"cawg.ai_training": {"use": "notAllowed"}}, signer=signer, label="cawg.training-mining"
    )
    (tmp_path / "a.jpg").write_bytes(data)
    services.ingest_run_execute(
        run_id=services.ingest_run_create(path=str(tmp_path), collection_name="c").id, workers=1
    )

    signal = Signal.objects.get()
    assert json.loads(signal.value) == {"cawg.ai_training": {"use": "notAllowed"}}
    assert signal.location.startswith("cawg.training-mining in C2PA manifest")
