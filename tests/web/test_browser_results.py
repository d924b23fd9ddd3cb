"""The results page in a real (headless) Chromium: a work shown small in a screenshot is found in the "this is
your work" tier, 24 results fit a 1280 px page no taller than 2,000 px and a phone without sideways scrolling,
and axe-core (npm, installed by scripts/browser.sh) finds no serious or critical violation on the search,
results, confirmation and "my opt-outs" pages."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests import composites
from tests.web.conftest import DEMO_FILES, FIXTURES
from tests.web.test_browser import ARTIFACTS, PASSWORD, _page, browser  # noqa: F401 (the fixture)

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(
    os.environ.get("PROVENANT_AXE_JS", ROOT / "var" / "npm" / "node_modules" / "axe-core" / "axe.min.js")
)
EXTRA_WORKS = 40  # beyond the demo files: enough results for more than one page's worth

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def many_works(tmp_path):
    """The demo files and 40 more fixture works, ingested and indexed; returns the target asset."""
    from embeddings.services import index_collection
    from provenance.models import Asset
    from provenance.services import ingest_run_create, ingest_run_execute

    folder = tmp_path / "collection"
    extra = [p.relative_to(FIXTURES) for p in sorted(FIXTURES.rglob("*.svg"))[40 : 40 + EXTRA_WORKS]]
    for name in [*DEMO_FILES, *map(str, extra)]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / name, folder / name)
    run = ingest_run_create(path=str(folder), collection_name="demo")
    ingest_run_execute(run_id=run.pk, workers=1)
    index_collection(collection_name="demo", workers=1)
    return Asset.objects.get(collection__name="demo", source=DEMO_FILES[2])


@pytest.fixture
def artist(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("mara", "mara@example.org", PASSWORD)


@pytest.fixture
def axe_js() -> Path:
    if not AXE.exists():
        message = f"no axe-core at {AXE} (bash scripts/browser.sh installs it from npm)"
        if os.environ.get("PROVENANT_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return AXE


def _screenshot_with(target, tmp_path: Path) -> Path:
    """A page screenshot holding the work at 20-45 % of its width beside text and other pictures."""
    from provenance.imaging import load_rgb_path

    others = composites.photographs() + [
        load_rgb_path(p).image for p in sorted(FIXTURES.rglob("*.svg"))[100:104]
    ]
    shot, _ = composites.page(load_rgb_path(target.local_path).image, np.random.default_rng(4), others)
    path = tmp_path / "seen-on-a-blog.jpg"
    buffer = io.BytesIO()
    shot.save(buffer, format="JPEG", quality=85)
    path.write_bytes(buffer.getvalue())
    return path


def _serious_violations(page, axe_js: Path) -> list[str]:
    page.add_script_tag(path=str(axe_js))
    return page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .filter(v => v.impact === "serious" || v.impact === "critical")
            .map(v => `${v.id} (${v.impact}): ${v.nodes.map(n => n.target.join(" ")).slice(0, 3).join(", ")}`)"""
    )


def _log_in(page, base: str) -> None:
    page.goto(base + "/accounts/login/")
    page.get_by_label("Username").fill("mara")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def test_a_work_in_a_screenshot_is_found_as_your_work_on_a_compact_accessible_page(
    live_server,
    many_works,
    artist,
    axe_js,
    settings,
    tmp_path,
    browser,  # noqa: F811
):
    base, target = live_server.url, many_works
    picture = _screenshot_with(target, tmp_path)
    page = _page(browser)
    _log_in(page, base)
    page.goto(base + "/")
    assert _serious_violations(page, axe_js) == []

    page.get_by_label("Picture to look for").set_input_files(str(picture))
    page.get_by_role("button", name="Search by picture").click()
    page.wait_for_selector("#results-heading")
    card = page.locator(f'#tier-work li.result[data-asset-id="{target.pk}"]')
    card.wait_for()
    assert page.locator("#tier-related").get_attribute("open") is None  # "might be related" starts collapsed
    assert page.locator("#tier-related").get_by_role("link", name="near-copies").count() == 0
    assert _serious_violations(page, axe_js) == []

    # the worst case: all results "your work", so the first 24 are shown at once
    settings.PROVENANT_SEARCH_CONFIDENT_COSINE = -1.0
    page.get_by_label("Picture to look for").set_input_files(str(picture))
    page.get_by_role("button", name="Search by picture").click()
    page.wait_for_selector("#results-heading")
    assert page.locator("#tier-related").count() == 0
    visible = page.locator("li.result:visible").count()
    assert visible == 24
    height = page.evaluate("document.documentElement.scrollHeight")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "results-24.png"), full_page=True)
    assert height <= 2000, f"{visible} results make the page {height} px tall"
    first_row = page.evaluate(
        "[...document.querySelectorAll('li.result')].filter(e => e.offsetParent)"
        ".filter((e, _, all) => e.getBoundingClientRect().top === all[0].getBoundingClientRect().top).length"
    )
    assert first_row >= 4

    card.get_by_role("link", name="Opt out this work and its near-copies").click()
    page.wait_for_selector("#copies-heading")
    assert _serious_violations(page, axe_js) == []
    page.goto(base + "/optouts/")
    assert _serious_violations(page, axe_js) == []

    phone = _page(browser, width=390, height=844)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(base + "/")
    phone.get_by_label("Picture to look for").set_input_files(str(picture))
    phone.get_by_role("button", name="Search by picture").click()
    phone.wait_for_selector("#results-heading")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.context.close()
    page.context.close()
