"""Embedded training opt-out signals in every raster format the ingest accepts, in files written by the real
tools: the XMP packet by exiftool, the C2PA manifest by c2pa-python (signed after exiftool wrote, as a
publishing pipeline would)."""

import subprocess

import pytest
from PIL import Image

from provenance import services
from provenance.models import Signal
from tests.c2pa_signing import make_signer, signed_file

EXIFTOOL = "/usr/bin/exiftool"
XMP = """<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/">
<plus:DataMining rdf:resource="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-SEECONSTRAINT"/>
</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end='w'?>"""
FORMATS = [("GIF", "gif", "image/gif"), ("PNG", "png", "image/png"), ("JPEG", "jpg", "image/jpeg"),
           ("WEBP", "webp", "image/webp"), ("TIFF", "tif", "image/tiff"), ("AVIF", "avif", "image/avif")]  # fmt: skip


def _with_xmp(tmp_path, fmt: str, ext: str):
    path = tmp_path / f"work.{ext}"
    Image.new("RGB", (48, 32), "teal").save(path, fmt)
    packet = tmp_path / "packet.xmp"
    packet.write_text(XMP, encoding="utf-8")
    # exiftool 12.x has no plus:DataMining tag of its own; it writes the whole packet as given
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", f"-xmp<={packet}", str(path)], check=True)
    assert (
        "DMI-PROHIBITED-SEECONSTRAINT"
        in subprocess.run(
            [EXIFTOOL, "-s3", "-XMP-plus:DataMining", str(path)], capture_output=True, text=True, check=True
        ).stdout
    )
    return path


def _ingest(folder) -> list[Signal]:
    run = services.ingest_run_execute(
        run_id=services.ingest_run_create(path=str(folder), collection_name="embedded").id, workers=1
    )
    assert run.new == 1, run.errors
    return list(Signal.objects.all())


@pytest.mark.django_db
@pytest.mark.parametrize(("fmt", "ext", "mime"), FORMATS)
def test_xmp_data_mining_written_by_exiftool_yields_a_signal_in_every_format(tmp_path, fmt, ext, mime):
    folder = tmp_path / "in"
    folder.mkdir()
    _with_xmp(folder, fmt, ext)
    (folder / "packet.xmp").unlink()
    signals = _ingest(folder)
    assert [(s.kind, s.value, s.location) for s in signals] == [
        ("iptc_data_mining", "DMI-PROHIBITED-SEECONSTRAINT", "XMP plus:DataMining")
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(("fmt", "ext", "mime"), FORMATS)
def test_c2pa_python_signed_files_keep_both_signals_in_every_format(tmp_path, fmt, ext, mime):
    folder = tmp_path / "in"
    folder.mkdir()
    path = _with_xmp(folder, fmt, ext)
    (folder / "packet.xmp").unlink()
    entries = {"c2pa.ai_generative_training": {"use": "notAllowed"}}
    path.write_bytes(signed_file(path.read_bytes(), mime, entries, signer=make_signer("Ada", "Studio")))
    kinds = sorted(s.kind for s in _ingest(folder))
    assert kinds == ["c2pa_training_mining", "iptc_data_mining"]
