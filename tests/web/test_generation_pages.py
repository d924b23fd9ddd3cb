"""Generation and report pages, on ledger rows written directly (training a generator is the generator's tests'
business)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.generator.factories import GeneratorModelFactory
from tests.training_filter.factories import ManifestBuildFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db):
    users = get_user_model().objects
    return {
        "owner": users.create_user("ada", "ada@example.org", "a-long-pass-phrase-9"),
        "stranger": users.create_user("eve", "eve@example.org", "a-long-pass-phrase-9"),
        "operator": users.create_superuser("op", "op@example.org", "a-long-pass-phrase-9"),
    }


@pytest.fixture
def generated(people, settings, tmp_path):
    from PIL import Image

    from generator.models import AttributionRecord, GeneratedImage

    settings.MEDIA_ROOT = tmp_path / "media"
    model = GeneratorModelFactory(version="g-test", status="ready", trained_at=timezone.now())
    image = GeneratedImage(
        model=model, prompt="a red bird", seed=7, resolution=32, created_by=people["owner"]
    )
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buffer, format="PNG")
    image.image.save("g-test-7.png", ContentFile(buffer.getvalue()), save=False)
    image.save()
    for method, shares in (
        ("gradient", {"Ada": 0.7, "others": 0.3}),
        ("similarity", {"Grace": 0.6, "others": 0.4}),
    ):
        AttributionRecord.objects.create(
            image=image, model=model, method=method, method_version="v1", shares=shares, raw_scores=shares
        )
    return image


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_generated_page_labels_similarity_shares_as_similarity(generated, people):
    page = _client(people["owner"]).get(reverse("web:generated", args=[generated.pk])).content.decode()
    assert "Contributor shares by influence" in page and "Contributor shares by similarity" in page
    assert "does not measure influence" in page  # the similarity table says what it is not
    assert "Grace" in page and "70%" in page


def test_generated_image_is_shown_to_its_creator_only(generated, people):
    url = reverse("web:generated-image", args=[generated.pk])
    response = _client(people["owner"]).get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert _client(people["stranger"]).get(url).status_code == 404
    assert _client(people["stranger"]).get(reverse("web:generated", args=[generated.pk])).status_code == 404


def test_reports_page_has_its_chart_and_csv_for_staff_only(generated, people):
    staff = _client(people["operator"])
    page = staff.get(reverse("web:reports"), {"method": "similarity", "pool": "100"}).content.decode()
    assert "shares by <strong>similarity</strong>" in page
    assert reverse("web:report-chart") in page and reverse("web:report-csv") in page
    chart = staff.get(reverse("web:report-chart"), {"method": "similarity", "pool": "100"})
    assert chart.status_code == 200 and chart.content.startswith(b"\x89PNG")
    csv = staff.get(reverse("web:report-csv"), {"method": "similarity", "pool": "100"})
    assert csv.content.decode().splitlines()[0] == "contributor,total_similarity_share,generations,payout"
    assert "Grace,0.600000,1,60.00" in csv.content.decode()
    assert _client(people["owner"]).get(reverse("web:reports")).status_code == 302


def test_generate_page_shows_the_current_model_and_a_labelled_prompt(generated, people):
    page = _client(people["owner"]).get(reverse("web:generate")).content.decode()
    assert "g-test" in page and 'for="id_prompt"' in page


def test_dashboard_shows_build_progress_and_stale_generators(people, generated):
    ManifestBuildFactory(input_ref="demo", status="running", shards_total=4, shards_done=1)
    generated.model.status, generated.model.stale_reason = "stale", "opt-out #3 covers 2 training works"
    generated.model.stale_at = timezone.now()
    generated.model.save()
    staff = _client(people["operator"])
    page = staff.get(reverse("web:dashboard")).content.decode()
    assert 'value="1"' in page and "1/4" in page and "builds.json" in page  # progress bar and the poller
    assert "opt-out #3 covers 2 training works" in page
    rows = staff.get(reverse("web:builds-progress")).json()["builds"]
    assert rows[0]["percent"] == 25 and rows[0]["status"] == "running"
