import hashlib
import io
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from PIL import Image

from provenance import services
from provenance.models import Asset, Contributor, IngestRun, Signal
from provenance.tasks import ingest_run_task
from tests.provenance.factories import ContributorFactory

pytestmark = pytest.mark.django_db

KNOWN_WORK = "animals/mammals/bat_01.svg"


def ingest(path: Path, collection: str = "test", **kwargs) -> IngestRun:
    run = services.ingest_run_create(path=str(path), collection_name=collection, **kwargs)
    return services.ingest_run_execute(run_id=run.id, workers=1)


def copy_works(source: Path, target: Path, names: list[str]) -> Path:
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, target / name)
    return target


@pytest.fixture
def few_works(openclipart_dir, tmp_path) -> Path:
    names = sorted(str(p.relative_to(openclipart_dir)) for p in openclipart_dir.rglob("*.svg"))[:6]
    return copy_works(openclipart_dir, tmp_path / "works", names)


def test_ingest_reads_creator_title_keywords_licence_and_hashes(few_works):
    run = ingest(few_works)

    assert (run.status, run.new, run.failed) == ("done", 6, 0)
    for asset in Asset.objects.all():
        data = (few_works / asset.source).read_bytes()
        assert asset.sha256 == hashlib.sha256(data).hexdigest()
        assert asset.byte_size == len(data)
        assert asset.format == "SVG" and asset.width > 0 and asset.height > 0
        assert asset.phash is not None and len(asset.pdq) == 64
        assert asset.title and asset.licence.startswith("http://")
    first = Asset.objects.get(source=sorted(Asset.objects.values_list("source", flat=True))[0])
    text = (few_works / first.source).read_text()
    assert f"<dc:title>{first.title}</dc:title>" in text
    assert all(f"<rdf:li>{keyword}</rdf:li>" in text for keyword in first.keywords)
    assert first.contributor.display_name in text


def test_second_ingest_of_the_fixture_adds_nothing(openclipart_dir):
    first = services.ingest_run_execute(
        run_id=services.ingest_run_create(path=str(openclipart_dir), collection_name="fixture").id, workers=2
    )
    second = ingest(openclipart_dir, "fixture")

    assert first.new >= 230 and first.new + first.failed == 243
    assert Contributor.objects.count() >= 50
    assert second.new == 0
    assert second.skipped == first.new
    assert Asset.objects.count() == first.new


def test_messy_credits_keep_raw_value_and_clean_display_name(openclipart_dir, tmp_path):
    credited = re.compile(r"<dc:creator>\s*<cc:Agent>\s*<dc:title>(HASH\(0x|[^<]*@)")
    found = [
        (p, m.group(1))
        for p in sorted(openclipart_dir.rglob("*.svg"))
        if (m := credited.search(p.read_text()))
    ]
    placeholders = [p for p, credit in found if credit == "HASH(0x"][:4]
    addresses = [p for p, credit in found if "@" in credit][:4]
    for path in placeholders + addresses:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    run = ingest(tmp_path, "messy")
    assert run.status == "done" and run.new >= 5
    assert Asset.objects.filter(creator_raw__startswith="HASH(0x").exists()
    assert Asset.objects.filter(creator_raw__contains="@").exists()
    for asset in Asset.objects.exclude(creator_raw=""):
        if asset.creator_raw.startswith("HASH(0x"):
            assert asset.contributor is None, "a Perl placeholder is not a person"
        elif asset.contributor:
            assert "@" not in asset.contributor.display_name
            assert asset.contributor.aliases.filter(raw_name=asset.creator_raw).exists()


def test_one_person_under_two_spellings_is_one_contributor():
    first = services.contributor_for_credit(raw="Jean-Victor Balin (balin_j@epita.fr)")
    second = services.contributor_for_credit(raw="jean-victor  BALIN")
    by_mail = services.contributor_for_credit(raw="mailto:ralf@ark.in-berlin.de")

    assert first == second and first.display_name == "Jean-Victor Balin"
    assert sorted(first.aliases.values_list("raw_name", flat=True)) == [
        "Jean-Victor Balin (balin_j@epita.fr)",
        "jean-victor  BALIN",
    ]
    assert by_mail.display_name == "ralf"
    assert services.contributor_for_credit(raw="HASH(0x8a0ab9c)") is None


def test_linking_an_alias_moves_its_works_to_the_other_contributor(few_works):
    ingest(few_works)
    asset = Asset.objects.exclude(contributor=None).first()
    alias = asset.contributor.aliases.get(raw_name=asset.creator_raw)
    target = ContributorFactory(display_name="Someone Else", name_key="someoneelse")

    services.contributor_link_alias(alias_id=alias.id, contributor_id=target.id)

    asset.refresh_from_db()
    assert asset.contributor == target


def write_bomb(path: Path) -> None:
    # 20,000 x 20,000 one-bit pixels: a few kB on disk, 400 megapixels once decoded
    Image.new("1", (20_000, 20_000)).save(path, optimize=True)


def test_corrupt_files_non_images_and_bombs_are_reported_and_the_run_goes_on(few_works):
    good = next(few_works.rglob("*.png"), None) or few_works
    png = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(png, "PNG")
    (few_works / "truncated.png").write_bytes(png.getvalue()[:60])
    (few_works / "not-an-image.jpg").write_text("hello, I am text")
    write_bomb(few_works / "bomb.png")
    (few_works / "laughs.svg").write_text(
        '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        '<svg xmlns="http://www.w3.org/2000/svg"><title>&b;</title></svg>'
    )
    assert good

    run = ingest(few_works)

    reasons = {error["item"]: error["reason"] for error in run.errors}
    assert (run.status, run.new, run.failed) == ("done", 6, 4)
    assert "decompression bomb" in reasons["bomb.png"]
    assert "corrupt" in reasons["truncated.png"]
    assert "not an image" in reasons["not-an-image.jpg"]
    assert "forbidden XML" in reasons["laughs.svg"]


def test_symbolic_links_are_skipped_not_followed(few_works, tmp_path):
    outside = tmp_path / "secret.png"
    Image.new("RGB", (32, 32), "blue").save(outside)
    (few_works / "link.png").symlink_to(outside)

    run = ingest(few_works)

    assert run.new == 6 and run.skipped == 1 and run.failed == 0
    assert not Asset.objects.filter(source="link.png").exists()


class _RecordingHandler(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_svg_referencing_urls_is_ingested_without_fetching_them(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _RecordingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    (tmp_path / "linked.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="100">'
        f'<image xlink:href="{url}/pixel.png" width="100" height="100"/>'
        f'<use xlink:href="{url}/defs.svg#x"/><rect width="50" height="50" fill="red"/></svg>'
    )
    try:
        run = ingest(tmp_path)
    finally:
        server.shutdown()
    assert run.new == 1
    assert _RecordingHandler.requests == []


XMP = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"
 plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING">
<dc:creator><rdf:Seq><rdf:li>Ada Painter</rdf:li></rdf:Seq></dc:creator>
<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">(c) 2026 Ada Painter, all rights reserved</rdf:li></rdf:Alt></dc:rights>
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Harbour at dusk</rdf:li></rdf:Alt></dc:title>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


def test_jpeg_with_xmp_data_mining_prohibition_yields_the_signal(tmp_path):
    image = Image.new("RGB", (200, 120), "navy")
    image.save(tmp_path / "harbour.jpg", "JPEG", xmp=XMP.encode())

    ingest(tmp_path)

    asset = Asset.objects.get(source="harbour.jpg")
    assert asset.contributor.display_name == "Ada Painter"
    assert asset.rights.startswith("(c) 2026 Ada Painter")
    assert asset.title == "Harbour at dusk"
    signal = Signal.objects.get(asset=asset)
    assert (signal.kind, signal.value) == ("iptc_data_mining", "DMI-PROHIBITED-AIMLTRAINING")
    assert signal.location == "XMP plus:DataMining"


def test_png_xmp_element_form_and_exif_artist_are_read(tmp_path):
    from PIL import PngImagePlugin

    element_form = XMP.replace(
        ' plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING">',
        "><plus:DataMining>DMI-PROHIBITED-GENAIMLTRAINING</plus:DataMining>",
    ).replace("<rdf:li>Ada Painter</rdf:li>", "<rdf:li>Bo Sculptor</rdf:li>")
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", element_form)
    Image.new("RGB", (64, 64), "green").save(tmp_path / "a.png", pnginfo=info)
    exif = Image.Exif()
    exif[0x013B] = "Cy Etcher"
    exif[0x8298] = "CC BY-NC"
    Image.new("RGB", (64, 64), "white").save(tmp_path / "b.jpg", exif=exif)

    ingest(tmp_path)

    a, b = Asset.objects.get(source="a.png"), Asset.objects.get(source="b.jpg")
    assert a.contributor.display_name == "Bo Sculptor"
    assert a.signals.get().value == "DMI-PROHIBITED-GENAIMLTRAINING"
    assert (b.contributor.display_name, b.rights) == ("Cy Etcher", "CC BY-NC")


def test_sidecar_json_supplies_credits(tmp_path):
    Image.new("RGB", (64, 64), "yellow").save(tmp_path / "sun.webp")
    (tmp_path / "sun.webp.json").write_text(
        json.dumps({"author": "Di Drafter", "title": "Sun", "keywords": "sun, sky", "license": "CC-BY-4.0"})
    )

    ingest(tmp_path)

    asset = Asset.objects.get(source="sun.webp")
    assert (asset.contributor.display_name, asset.title, asset.licence) == ("Di Drafter", "Sun", "CC-BY-4.0")
    assert asset.keywords == ["sun", "sky"] and asset.format == "WEBP"


def test_the_celery_task_ingests_and_is_safe_to_run_twice(few_works):
    run = services.ingest_run_create(path=str(few_works), collection_name="celery")

    ingest_run_task.delay(run.id)
    ingest_run_task.delay(run.id)

    run.refresh_from_db()
    assert (run.status, run.new) == ("done", 6)
    assert Asset.objects.count() == 6


@pytest.mark.parametrize(("raster_side", "uses_raster"), [(60, False), (400, True)])
def test_a_thumbnail_raster_gives_way_to_the_drawing_itself(
    openclipart_dir, tmp_path, raster_side, uses_raster
):
    from provenance.imaging import render_svg
    from provenance.ingest_items import SVG_MAX_SIDE, ItemInput, read_item

    svg = openclipart_dir / "shapes/flowchart/fc05.svg"
    raster = tmp_path / "raster.png"
    render_svg(svg.read_bytes(), max_side=raster_side).save(raster)
    result = read_item(ItemInput(source=svg.name, path=str(svg), raster_path=str(raster)), max_pixels=10**8)
    assert result.ok, result.reason
    side = max(result.fields["width"], result.fields["height"])
    if uses_raster:
        assert (result.fields["local_path"], side) == (str(raster), raster_side)
    else:  # a 60 px icon is too small to match a larger copy: the SVG is rendered instead
        assert (result.fields["local_path"], side) == (str(svg), SVG_MAX_SIDE)
