"""The artist's whole journey in a real (headless) Chromium, driven by Playwright against a live server.

An artist signs up, uploads a cropped, re-encoded copy of a demo work, sees the original found, opts it out with
its near-copies, follows the request to "active" (an operator approves it: nobody has verified ownership of the
work), and an anonymous visitor's search no longer shows the work or its copy. Each step leaves a screenshot in
test-artifacts/browser/; with SAVE_DOCS_SCREENSHOTS=1 the search-results and opt-out-status ones are also written,
compressed, to docs/screenshots/.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from tests.web.conftest import cropped_jpeg

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("PROVENANT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = (
    60_000  # a search on a busy 2-core CI runner can take seconds; waits end as soon as the page is ready
)
PASSWORD = "lines-and-colours-2024"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set PROVENANT_CHROMIUM)"
        # `make test` and CI set this: there a skipped browser test is a failure
        if os.environ.get("PROVENANT_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def _page(browser, *, width: int = 1280, height: int = 900):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.set_default_navigation_timeout(TIMEOUT_MS)
    return page


def _shot(page, name: str, *, docs: bool = False, anchor: str = "") -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if docs and os.environ.get("SAVE_DOCS_SCREENSHOTS") == "1":
        if anchor:
            page.locator(anchor).scroll_into_view_if_needed()
            page.evaluate("sel => window.scrollTo(0, document.querySelector(sel).offsetTop - 16)", anchor)
        _save_for_docs(page, DOCS_SHOTS / f"{name}.png")


def _save_for_docs(page, path: Path) -> None:
    """The visible viewport, palette-compressed: committed screenshots stay well under 300 kB."""
    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot(full_page=False))).convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, format="PNG", optimize=True)


def _search_by_picture(page, base: str, picture: Path) -> None:
    page.goto(base + "/")
    page.get_by_label("Picture to look for").set_input_files(str(picture))
    page.get_by_role("button", name="Search by picture").click()
    page.wait_for_selector("#results-heading")


@pytest.fixture
def operator_account(db):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("operator", "op@example.org", PASSWORD)


# The database work happens in fixtures listed before `browser`: once Playwright's event loop runs in this thread,
# Django would treat ORM calls as coming from an async context and open a connection nobody closes.
def test_artist_opts_out_a_found_work_and_anonymous_search_no_longer_shows_it(
    live_server, demo_works, operator_account, tmp_path, browser
):
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    target, copy = demo_works["target"], demo_works["copy"]
    picture = tmp_path / "found-on-the-web.jpg"
    picture.write_bytes(cropped_jpeg(target, fraction=0.7, quality=40))
    base = live_server.url

    # 1. sign up
    artist = _page(browser)
    artist.goto(base + "/")
    _shot(artist, "01-home")
    artist.get_by_role("link", name="Sign up").first.click()
    artist.get_by_label("Username").fill("mara")
    artist.get_by_label("E-mail address").fill("mara@example.org")
    artist.get_by_label("Password", exact=True).fill(PASSWORD)
    artist.get_by_label("Password again").fill(PASSWORD)
    _shot(artist, "02-signup")
    artist.get_by_role("button", name="Sign up").click()
    artist.wait_for_selector("text=Welcome, mara")

    # 2. upload the cropped, re-encoded copy: the original is found, with its re-posted copy in one group
    _search_by_picture(artist, base, picture)
    card = artist.locator(f'li.result[data-asset-id="{target.pk}"]')
    card.wait_for()
    assert artist.locator(f'li.result[data-asset-id="{copy.pk}"]').count() == 1
    assert card.locator(".badge").first.inner_text() in (
        "geometric (crop or partial copy)",
        "perceptual hash",
    )
    copy_card = artist.locator(f'li.result[data-asset-id="{copy.pk}"]')
    assert copy_card.get_attribute("data-cluster") == card.get_attribute(
        "data-cluster"
    )  # one near-copy group
    _shot(artist, "03-search-results", docs=True, anchor="#results-heading")
    phone = _page(browser, width=390, height=844)
    phone.context.add_cookies(artist.context.cookies())
    _search_by_picture(phone, base, picture)
    phone.locator(f'li.result[data-asset-id="{target.pk}"]').wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling on a phone
    _shot(phone, "03b-search-results-phone")
    phone.context.close()

    # 3. opt out the work with its near-copies, through the confirmation page
    card.get_by_role("link", name="Opt out this work and its near-copies").click()
    artist.wait_for_selector("#copies-heading")
    assert artist.locator("#copies-heading").inner_text().startswith("2 works")
    _shot(artist, "04-confirm")
    artist.get_by_label("I made this work").check()
    artist.get_by_role("button", name="Confirm opt-out").click()
    request_card = artist.locator("li.optout").first
    request_card.wait_for()
    assert request_card.get_attribute("data-status") == "pending"  # unverified ownership: an operator reviews
    _shot(artist, "05-my-optouts-pending")

    optout_id = int(request_card.get_attribute("id").removeprefix("optout-"))

    # 4. an operator approves it from the dashboard
    operator = _page(browser)
    operator.goto(base + "/operator/")
    operator.get_by_label("Username").fill("operator")
    operator.get_by_label("Password").fill(PASSWORD)
    operator.get_by_role("button", name="Log in").click()
    operator.wait_for_selector(f"#review-optout-{optout_id}")
    _shot(operator, "06-dashboard")
    operator.get_by_role("button", name=f"Approve #{optout_id}").click()
    operator.wait_for_selector(f"text=Opt-out #{optout_id} is now active")
    operator.context.close()

    # 5. the artist sees it active, with its history
    artist.reload()
    active = artist.locator(f'#optout-{optout_id}[data-status="active"]')
    active.wait_for()
    active.locator("summary", has_text="History").click()
    artist.wait_for_selector("text=approved by an operator")
    _shot(artist, "07-my-optouts-active", docs=True)

    # 6. an anonymous visitor's search shows neither the work nor its copy
    anonymous = _page(browser)
    _search_by_picture(anonymous, base, picture)
    anonymous.wait_for_selector("li.result, #no-results", state="attached")  # "might be related" is collapsed
    assert anonymous.locator(f'li.result[data-asset-id="{target.pk}"]').count() == 0
    assert anonymous.locator(f'li.result[data-asset-id="{copy.pk}"]').count() == 0
    _shot(anonymous, "08-anonymous-search")
    anonymous.context.close()
    artist.context.close()
