"""Fast page tests with Django's test client: CSRF, upload errors, thumbnails, permissions, the opt-out flow."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tests.embeddings.factories import IndexRunFactory
from tests.web.conftest import cropped_jpeg

pytestmark = pytest.mark.django_db


@pytest.fixture
def artist(db):
    return get_user_model().objects.create_user("ada", "ada@example.org", "a-long-pass-phrase-9")


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("op", "op@example.org", "a-long-pass-phrase-9")


def _upload(data: bytes, name: str = "query.jpg", content_type: str = "image/jpeg"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def test_every_form_refuses_a_post_without_csrf_token(artist):
    client = Client(enforce_csrf_checks=True)
    assert client.post(reverse("web:login"), {"username": "ada", "password": "x"}).status_code == 403
    assert client.post(reverse("web:signup"), {"username": "bob"}).status_code == 403
    assert client.post(reverse("web:home"), {"q": "cat"}).status_code == 403
    client.force_login(artist)
    assert client.post(reverse("web:optout-confirm"), {"asset": 1, "scope": "works"}).status_code == 403
    assert client.post(reverse("web:optout-revoke", args=[1])).status_code == 403


def test_rendered_forms_carry_a_csrf_token(artist):
    client = Client()
    for name in ("web:home", "web:login", "web:signup"):
        assert b"csrfmiddlewaretoken" in client.get(reverse(name)).content


def test_a_non_image_upload_shows_an_error_and_keeps_the_form():
    response = Client().post(reverse("web:home"), {"image": _upload(b"hello, not a picture", "notes.txt")})
    assert response.status_code == 400
    page = response.content.decode()
    assert "could not read this file as a picture" in page
    assert 'id="upload-form"' in page and 'role="alert"' in page


def test_a_decompression_bomb_is_refused_with_a_message(settings):
    from PIL import Image

    settings.PROVENANT_MAX_IMAGE_PIXELS = 1_000_000
    buffer = io.BytesIO()
    Image.new("L", (2000, 2000)).save(buffer, format="PNG")  # 4 MP, tiny file
    response = Client().post(
        reverse("web:home"), {"image": _upload(buffer.getvalue(), "bomb.png", "image/png")}
    )
    assert response.status_code == 400
    assert "too large to open safely" in response.content.decode()


def test_an_upload_over_the_size_limit_is_refused_with_a_message(settings):
    settings.PROVENANT_MAX_UPLOAD_BYTES = 1000
    response = Client().post(reverse("web:home"), {"image": _upload(b"\xff" * 5000)})
    assert response.status_code == 413
    assert "the limit is" in response.content.decode()


def test_an_empty_search_asks_for_a_picture_or_words():
    response = Client().post(reverse("web:home"), {})
    assert response.status_code == 400
    assert "Choose a picture to upload or type something" in response.content.decode()


def test_thumbnail_of_an_unknown_work_is_404():
    assert Client().get(reverse("web:thumbnail", args=[999999, 320])).status_code == 404


def test_thumbnail_is_a_cached_sized_jpeg_with_etag(demo_works, settings):
    from PIL import Image

    asset = demo_works["target"]
    client = Client()
    response = client.get(reverse("web:thumbnail", args=[asset.pk, 160]))
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert "max-age" in response["Cache-Control"] and response["ETag"]
    assert max(Image.open(io.BytesIO(response.content)).size) == 160
    assert list((settings.DATA_DIR / "thumbs").rglob("*.jpg"))  # cached on disk
    again = client.get(reverse("web:thumbnail", args=[asset.pk, 160]), HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert client.get(reverse("web:thumbnail", args=[asset.pk, 123])).status_code == 404  # sizes are fixed


def test_dashboard_is_for_staff_only(artist, operator):
    client = Client()
    url = reverse("web:dashboard")
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(artist)
    assert client.get(url).status_code == 302
    assert client.post(reverse("web:optout-review", args=[1]), {"decision": "approve"}).status_code == 302
    client.force_login(operator)
    response = client.get(url)
    assert response.status_code == 200 and "Review queue" in response.content.decode()
    assert client.get(reverse("web:builds-progress")).status_code == 200


def test_signup_logs_the_artist_in():
    client = Client()
    response = client.post(
        reverse("web:signup"),
        {"username": "grace", "email": "g@example.org", "password1": "cobol-and-moths-1947",
         "password2": "cobol-and-moths-1947"},
    )  # fmt: skip
    assert response.status_code == 302
    assert client.get(reverse("web:my-optouts")).status_code == 200


def test_signup_with_a_weak_password_explains_why():
    response = Client().post(
        reverse("web:signup"),
        {"username": "grace", "email": "g@example.org", "password1": "123", "password2": "123"},
    )
    assert response.status_code == 200 and "too short" in response.content.decode()


def test_opt_out_pages_need_a_login():
    response = Client().get(reverse("web:optout-confirm") + "?asset=1&scope=works")
    assert response.status_code == 302 and reverse("web:login") in response["Location"]


def test_upload_search_finds_the_crop_and_the_opt_out_flow_hides_it(demo_works, artist, operator):
    target, copy = demo_works["target"], demo_works["copy"]
    client = Client()
    client.force_login(artist)
    page = client.post(reverse("web:home"), {"image": _upload(cropped_jpeg(target))}).content.decode()
    assert f'data-asset-id="{target.pk}"' in page and "+1 near-copy" in page

    confirm = client.get(reverse("web:optout-confirm") + f"?asset={target.pk}&scope=near_copies")
    assert confirm.status_code == 200 and "2 works will be opted out" in confirm.content.decode()
    missing_tick = client.post(reverse("web:optout-confirm"), {"asset": target.pk, "scope": "near_copies"})
    assert missing_tick.status_code == 400  # the confirmation box is required
    done = client.post(
        reverse("web:optout-confirm"),
        {"asset": target.pk, "scope": "near_copies", "confirm": "on"},
        follow=True,
    )
    assert 'data-status="pending"' in done.content.decode()

    staff = Client()
    staff.force_login(operator)
    from optout.models import OptOut

    optout = OptOut.objects.get(artist=artist)
    staff.post(reverse("web:optout-review", args=[optout.pk]), {"decision": "approve"})
    assert 'data-status="active"' in client.get(reverse("web:my-optouts")).content.decode()

    anonymous = Client().post(reverse("web:home"), {"image": _upload(cropped_jpeg(target))}).content.decode()
    assert f'data-asset-id="{target.pk}"' not in anonymous and f'data-asset-id="{copy.pk}"' not in anonymous
    assert Client().get(reverse("web:thumbnail", args=[target.pk, 160])).status_code == 404

    client.post(reverse("web:optout-revoke", args=[optout.pk]))
    assert 'data-status="revoked"' in client.get(reverse("web:my-optouts")).content.decode()


def test_contributor_page_lists_works_and_aliases(demo_works):
    asset = next(a for a in demo_works["assets"] if a.contributor_id)
    response = Client().get(reverse("web:contributor", args=[asset.contributor_id]))
    assert response.status_code == 200 and f'data-asset-id="{asset.pk}"' in response.content.decode()
    assert Client().get(reverse("web:contributor", args=[999999])).status_code == 404


def test_text_search_by_contributor_links_to_the_contributor(demo_works):
    asset = next(a for a in demo_works["assets"] if a.contributor_id)
    name = asset.contributor.display_name
    page = Client().get(reverse("web:home"), {"q": name, "kind": "contributor"}).content.decode()
    assert reverse("web:contributor", args=[asset.contributor_id]) in page


def test_generation_page_says_when_no_generator_is_trained(artist):
    client = Client()
    client.force_login(artist)
    response = client.get(reverse("web:generate"))
    assert response.status_code == 200
    assert "not available yet" in response.content.decode()


def _tiers(page: str) -> tuple[str, str]:
    work, _, related = page.partition('id="tier-related"')
    return work, related


def test_results_come_in_two_tiers_and_only_your_work_offers_the_near_copy_opt_out(demo_works, artist):
    target = demo_works["target"]
    client = Client()
    client.force_login(artist)
    upload = _upload(open(target.local_path, "rb").read(), name="mine.svg")
    page = client.post(reverse("web:home"), {"image": upload}).content.decode()
    work, related = _tiers(page)
    assert f'data-asset-id="{target.pk}"' in work and "The very same file as your picture." in work
    assert "scope=near_copies" in work
    assert related and "scope=near_copies" not in related and "scope=works" in related
    assert '<details class="tier" id="tier-related">' in page  # collapsed until opened
    assert 'id="result-count"' in page


def test_a_work_without_a_title_is_named_after_its_file_and_says_where_it_sits(demo_works):
    from provenance.models import Asset

    target = demo_works["target"]
    Asset.objects.filter(pk=target.pk).update(title="")
    page = Client().post(reverse("web:home"), {"image": _upload(open(target.local_path, "rb").read())})
    assert "Bb mail new" in page.content.decode() and "Untitled work" not in page.content.decode()
    assert f"demo · {target.source}" in page.content.decode()


def test_the_dashboard_shows_indexing_progress(demo_works, operator):

    run = IndexRunFactory(
        collection=demo_works["target"].collection, kind="parts", status="running", total=8, parts_embedded=6
    )
    client = Client()
    client.force_login(operator)
    page = client.get(reverse("web:dashboard")).content.decode()
    assert f'data-row="{run.pk}"' in page and "6/8 (75 %)" in page and "parts of each work" in page
    rows = client.get(reverse("web:index-progress")).json()["runs"]
    assert rows[0]["id"] == run.pk and rows[0]["percent"] == 75
