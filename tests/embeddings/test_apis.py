import io
import json
import subprocess
import sys

from django.core.management import call_command
from PIL import Image

from tests.embeddings.conftest import jpeg_bytes, png_bytes


def _upload(api_client, data: bytes, name: str = "query.jpg"):
    return api_client.post("/api/search/image/", {"image": _file(data, name)}, format="multipart")


def _file(data: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def test_anonymous_image_search_finds_a_reencoded_copy(api_client, indexed_works):
    from provenance.imaging import load_rgb_path

    target = indexed_works[8]
    response = _upload(api_client, jpeg_bytes(load_rgb_path(target.local_path).image, quality=40))
    assert response.status_code == 200, response.content
    first = response.json()["results"][0]
    assert first["asset_id"] == target.id and first["match"] in ("hash", "exact")
    assert {"source", "contributor", "title", "score", "why", "cluster", "opted_out"} <= set(first)


def test_non_image_upload_is_a_clear_400(api_client, indexed_works):
    response = _upload(api_client, b"%PDF-1.4 definitely not a picture", "doc.pdf")
    assert response.status_code == 400
    assert "not an image" in response.json()["message"]


def test_oversize_upload_is_refused_with_413(api_client, indexed_works, settings):
    settings.PROVENANT_MAX_UPLOAD_BYTES = 1000
    response = _upload(api_client, png_bytes(Image.effect_noise((100, 100), 50)))
    assert response.status_code == 413 and "limit" in response.json()["message"]


def test_decompression_bomb_is_a_clear_400(api_client, indexed_works):
    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, format="PNG")  # 144 MP in a few kB
    response = _upload(api_client, bomb.getvalue(), "bomb.png")
    assert response.status_code == 400 and "decompression bomb" in response.json()["message"]


def test_missing_image_field_is_a_400(api_client, indexed_works):
    assert api_client.post("/api/search/image/", {}, format="multipart").status_code == 400


def test_text_contributor_and_domain_searches_answer_over_http(api_client, indexed_works):
    by_text = api_client.get("/api/search/", {"q": indexed_works[0].title})
    assert by_text.status_code == 200 and by_text.json()["results"][0]["asset_id"] == indexed_works[0].id
    by_name = api_client.get("/api/search/", {"contributor": "hedy"})
    assert {r["contributor"] for r in by_name.json()["results"]} == {"Hedy Lamarr"}
    by_domain = api_client.get("/api/search/", {"domain": "other.test"})
    assert {r["domain"] for r in by_domain.json()["results"]} == {"other.test"}


def test_search_needs_exactly_one_parameter(api_client, db):
    assert api_client.get("/api/search/").status_code == 400
    assert api_client.get("/api/search/", {"q": "cat", "domain": "x.org"}).status_code == 400


def test_find_work_prints_a_json_list(indexed_works, tmp_path, capsys):
    from provenance.imaging import load_rgb_path

    target = indexed_works[10]
    query = tmp_path / "query.png"
    load_rgb_path(target.local_path).image.resize((500, 400)).save(query)
    call_command("find_work", str(query), "--top", "3", "--json")
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and rows[0]["asset_id"] == target.id
    assert {"asset_id", "source", "contributor", "title", "score", "match", "cluster", "why"} <= set(rows[0])


def test_search_modules_import_without_heavy_libraries():
    code = (
        "import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings.test');"
        "django.setup(); import embeddings.apis, embeddings.urls, embeddings.search.cascade, embeddings.selectors;"
        "heavy = [m for m in ('torch', 'faiss', 'cv2', 'open_clip') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
