"""Limits an attacker cannot dodge: throttles keyed on the real client address (not a header the client writes),
the same throttles on the pages as on the API, a per-username lockout, throttled verification and opt-out creation,
and request bodies refused by size before anything parses them."""

import pytest
from axes.handlers.proxy import AxesProxyHandler
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from tests.core.factories import UserFactory
from tests.optout.conftest import client_for
from tests.optout.factories import DomainClaimFactory
from tests.provenance.factories import AssetFactory

PASSWORD = "correct horse battery"


@pytest.fixture
def throttled(settings):
    """Throttles on, with the given rates (scope -> rate), and fresh counters."""

    def switch_on(**rates):
        settings.PROVENANT_THROTTLE_ENABLED = True
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
        cache.clear()

    return switch_on


@pytest.fixture
def lockout(settings):
    settings.AXES_ENABLED, settings.AXES_FAILURE_LIMIT = True, 3
    cache.clear()
    AxesProxyHandler.get_implementation(force=True)
    yield
    cache.clear()


def _signup(client, n: int, **headers):
    body = {"username": f"painter{n}", "email": f"p{n}@example.org", "password": "a long passphrase 42"}
    return client.post(reverse("artist-signup"), body, format="json", headers=headers)


# --- the client address -----------------------------------------------------------------------------------------


def test_rotating_x_forwarded_for_does_not_reset_the_signup_throttle(db, throttled):
    throttled(signup="2/hour")
    client = client_for(None)
    codes = [_signup(client, n, X_Forwarded_For=f"203.0.113.{n}").status_code for n in range(3)]
    assert codes == [201, 201, 429]


def test_behind_a_trusted_proxy_the_address_it_appended_is_the_client(db, throttled, settings):
    throttled(signup="1/hour")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    client = client_for(None)
    # the client may write anything to the left; the proxy appends the address it saw
    assert _signup(client, 1, X_Forwarded_For="1.1.1.1, 198.51.100.7").status_code == 201
    assert _signup(client, 2, X_Forwarded_For="2.2.2.2, 198.51.100.7").status_code == 429
    assert _signup(client, 3, X_Forwarded_For="1.1.1.1, 198.51.100.8").status_code == 201


# --- the pages are throttled as the API is -------------------------------------------------------------------


def test_the_login_page_is_throttled_and_a_header_does_not_reset_it(db, throttled):
    throttled(login="5/minute")
    UserFactory(username="alice")
    client = Client()
    codes = [
        client.post(
            reverse("web:login"),
            {"username": "alice", "password": f"guess {n}"},
            HTTP_X_FORWARDED_FOR=f"10.0.0.{n}",
        ).status_code
        for n in range(6)
    ]
    assert codes == [200] * 5 + [429]
    right = client.post(reverse("web:login"), {"username": "alice", "password": PASSWORD})
    assert right.status_code == 429 and "Please wait" in right.content.decode()
    assert int(right["Retry-After"]) >= 1


def test_the_signup_page_is_throttled(db, throttled):
    throttled(signup="1/hour")
    client = Client()
    form = {"username": "newcomer", "email": "n@example.org", "password1": "a long passphrase 42",
            "password2": "a long passphrase 42"}  # fmt: skip
    assert client.post(reverse("web:signup"), form).status_code == 302
    Client().get(reverse("web:signup"))  # reading the page costs nothing
    assert Client().post(reverse("web:signup"), {**form, "username": "second"}).status_code == 429


def test_search_by_words_and_by_upload_share_the_search_throttle(db, throttled):
    throttled(search="2/minute")
    client = Client()
    assert client.get(reverse("web:home"), {"q": ""}).status_code == 200
    assert client.post(reverse("web:home"), {}).status_code == 400  # an empty upload form, still counted
    assert client.get(reverse("web:home"), {"q": "cat"}).status_code == 429


# --- per-username lockout ------------------------------------------------------------------------------------


def test_a_username_is_locked_after_repeated_failures_from_any_address(db, lockout):
    UserFactory(username="alice")
    for n in range(3):
        wrong = client_for(None).post(
            reverse("artist-login"), {"username": "alice", "password": f"guess {n}"}, format="json",
            REMOTE_ADDR=f"192.0.2.{n}",
        )  # fmt: skip
        assert wrong.status_code in (401, 429)
    right = client_for(None).post(
        reverse("artist-login"), {"username": "alice", "password": PASSWORD}, format="json",
        REMOTE_ADDR="192.0.2.200",
    )  # fmt: skip
    assert right.status_code == 429
    assert "locked" in right.json()["message"] and "token" not in right.json()
    page = Client(REMOTE_ADDR="192.0.2.201").post(
        reverse("web:login"), {"username": "alice", "password": PASSWORD}
    )
    assert page.status_code == 429 and "locked" in page.content.decode()


def test_a_right_password_before_the_limit_resets_the_count(db, lockout):
    UserFactory(username="bob")
    api = client_for(None)

    def login(password: str) -> int:
        body = {"username": "bob", "password": password}
        return api.post(reverse("artist-login"), body, format="json").status_code

    # two failures, a success, two more: never three in a row, so never locked
    assert [login(p) for p in ("wrong", "wrong", PASSWORD, "wrong", "wrong", PASSWORD)] == [401, 401, 200] * 2


# --- throttled verification and opt-out creation -----------------------------------------------------------------


def test_domain_verification_is_throttled(artist, throttled):
    throttled(verify="2/hour")
    claim = DomainClaimFactory(artist=artist, domain="unreachable.invalid")
    api = client_for(artist)
    codes = [api.post(reverse("domain-claim-verify", args=[claim.pk])).status_code for _ in range(3)]
    assert codes[:2] == [400, 400] and codes[2] == 429


def test_optout_creation_is_throttled_but_listing_is_not(artist, throttled):
    throttled(optout_create="2/hour")
    api = client_for(artist)
    works = [AssetFactory() for _ in range(3)]
    codes = [
        api.post(reverse("optout-list"), {"scope": "works", "asset_ids": [w.pk]}, format="json").status_code
        for w in works
    ]
    assert codes == [201, 201, 429]
    assert api.get(reverse("optout-list")).status_code == 200


def test_the_optout_page_is_throttled_with_the_api(artist, throttled):
    throttled(optout_create="1/hour")
    work, other = AssetFactory(), AssetFactory()
    page = Client()
    page.force_login(artist)
    form = {"asset": work.pk, "scope": "works", "confirm": "on"}
    assert page.post(reverse("web:optout-confirm"), form).status_code == 302
    assert page.post(reverse("web:optout-confirm"), {**form, "asset": other.pk}).status_code == 429


# --- request body limits --------------------------------------------------------------------------------------


def test_an_oversized_check_body_is_refused_with_json_413_before_parsing(other_artist, settings):
    settings.OPTOUT_CHECK_MAX_BODY_BYTES = 10_000
    items = [{"url": f"https://example.org/{'x' * 100}/{n}"} for n in range(200)]
    response = client_for(other_artist).post("/api/check/", {"items": items}, format="json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "accepts at most 10,000" in response.json()["message"]
    assert response.json()["extra"]["limit_bytes"] == 10_000
    small = client_for(other_artist).post("/api/check/", {"items": items[:5]}, format="json")
    assert small.status_code == 200


def test_a_body_that_is_not_json_is_refused_unread_past_the_limit(other_artist, settings):
    settings.OPTOUT_CHECK_MAX_BODY_BYTES = 1000
    response = client_for(other_artist).generic(
        "POST", "/api/check/", b"[" * 50_000, content_type="application/json"
    )
    assert response.status_code == 413


def test_every_other_api_body_has_the_general_limit(artist, settings):
    settings.PROVENANT_MAX_BODY_BYTES = 2000
    body = {"scope": "works", "asset_ids": [1], "reason": "r" * 5000}
    response = client_for(artist).post(reverse("optout-list"), body, format="json")
    assert response.status_code == 413 and "at most 2,000" in response.json()["message"]


def test_a_page_upload_far_over_the_limit_is_refused_before_it_is_read(db, settings):
    settings.PROVENANT_MAX_UPLOAD_BYTES = 1000
    from django.core.files.uploadedfile import SimpleUploadedFile

    huge = SimpleUploadedFile("big.png", b"\xff" * 200_000, content_type="image/png")
    response = Client().post(reverse("web:home"), {"image": huge})
    assert response.status_code == 413
    assert "Request too large" in response.content.decode()
