"""API tokens hashed at rest, shown once, rotatable and revocable by their owner; Idempotency-Key judged by the
whole key and the whole request."""

import hashlib

import pytest
from django.db import connection
from django.urls import reverse
from knox.models import AuthToken

from optout.models import AuditEntry, OptOut
from tests.core.factories import UserFactory
from tests.optout.conftest import client_for
from tests.provenance.factories import AssetFactory

SIGNUP = {"username": "painter", "email": "p@example.org", "password": "a long passphrase 42"}


def _authed(token: str):
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_tokens_are_stored_as_digests_never_in_plaintext(db):
    token = client_for(None).post(reverse("artist-signup"), SIGNUP, format="json").json()["token"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM knox_authtoken")
        stored = [str(value) for row in cursor.fetchall() for value in row]
    assert token not in stored
    assert hashlib.sha512(token.encode()).hexdigest() in stored
    assert _authed(token).get(reverse("optout-list")).status_code == 200


def test_each_login_issues_a_new_token_and_never_returns_the_signup_one(db):
    api = client_for(None)
    signup_token = api.post(reverse("artist-signup"), SIGNUP, format="json").json()["token"]
    login = {"username": SIGNUP["username"], "password": SIGNUP["password"]}
    first = api.post(reverse("artist-login"), login, format="json").json()
    second = api.post(reverse("artist-login"), login, format="json").json()
    assert len({signup_token, first["token"], second["token"]}) == 3
    assert first["expiry"] is not None  # login tokens expire


def test_an_owner_creates_lists_rotates_and_revokes_tokens(db):
    owner = UserFactory(username="owner")
    session = _authed(AuthToken.objects.create(user=owner)[1])
    made = session.post(reverse("token-list"), {"days": 30}, format="json")
    assert made.status_code == 201
    pipeline, key = made.json()["token"], made.json()["token_key"]
    listed = session.get(reverse("token-list")).json()["results"]
    assert key in [t["token_key"] for t in listed] and "token" not in listed[0]
    assert [t["current"] for t in listed].count(True) == 1

    rotated = _authed(pipeline).post(reverse("token-rotate"))
    assert rotated.status_code == 201
    assert _authed(pipeline).get(reverse("optout-list")).status_code == 401
    new = rotated.json()["token"]
    assert _authed(new).get(reverse("optout-list")).status_code == 200

    assert session.delete(reverse("token-revoke", args=[rotated.json()["token_key"]])).status_code == 204
    assert _authed(new).get(reverse("optout-list")).status_code == 401
    events = list(AuditEntry.objects.filter(event__startswith="token.").values_list("event", flat=True))
    assert events == ["token.created", "token.revoked", "token.created", "token.revoked"]


def test_nobody_revokes_another_persons_token(db):
    alice, mallory = UserFactory(username="alice"), UserFactory(username="mallory")
    row, alice_token = AuthToken.objects.create(user=alice)
    response = _authed(AuthToken.objects.create(user=mallory)[1]).delete(
        reverse("token-revoke", args=[row.token_key])
    )
    assert response.status_code == 404
    assert _authed(alice_token).get(reverse("optout-list")).status_code == 200


def test_a_session_cannot_rotate_a_token_it_does_not_hold(db):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(UserFactory(username="browser"))
    assert client.post(reverse("token-rotate")).status_code == 400


def test_a_user_has_a_bounded_number_of_live_tokens(db, settings):
    settings.PROVENANT_MAX_TOKENS_PER_USER = 2
    owner = UserFactory(username="owner")
    session = _authed(AuthToken.objects.create(user=owner)[1])
    assert session.post(reverse("token-list"), {}, format="json").status_code == 201
    refused = session.post(reverse("token-list"), {}, format="json")
    assert refused.status_code == 409 and "revoke one first" in refused.json()["message"]


# --- Idempotency-Key -------------------------------------------------------------------------------------------


def _create(api, asset_ids, key, reason=""):
    body = {"scope": "works", "asset_ids": asset_ids, "reason": reason}
    return api.post(reverse("optout-list"), body, format="json", headers={"Idempotency-Key": key})


def test_a_replay_with_the_same_key_and_body_returns_the_first_optout(artist):
    work = AssetFactory()
    api = client_for(artist)
    first, replay = _create(api, [work.pk], "k-1"), _create(api, [work.pk], "k-1")
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json()["id"] == first.json()["id"]


def test_a_reused_key_with_another_body_answers_422_and_creates_nothing(artist):
    first_work, second_work = AssetFactory(), AssetFactory()
    api = client_for(artist)
    first = _create(api, [first_work.pk], "k-1")
    reused = _create(api, [second_work.pk], "k-1")
    assert reused.status_code == 422
    assert reused.json()["extra"]["optout_id"] == first.json()["id"]
    assert OptOut.objects.count() == 1
    assert _create(api, [first_work.pk], "k-1", reason="changed my mind").status_code == 422


@pytest.mark.parametrize("length", [201, 5000])
def test_long_keys_are_compared_whole(artist, length):
    works = [AssetFactory(), AssetFactory()]
    api = client_for(artist)
    prefix = "x" * (length - 1)
    one, two = _create(api, [works[0].pk], prefix + "a"), _create(api, [works[1].pk], prefix + "b")
    assert (one.status_code, two.status_code) == (201, 201)
    assert one.json()["id"] != two.json()["id"]
    stored = set(OptOut.objects.values_list("idempotency_key", flat=True))
    assert stored == {hashlib.sha256((prefix + c).encode()).hexdigest() for c in "ab"}


def test_upgrading_turns_plaintext_tokens_into_digests_that_keep_working(db):
    """The migration from DRF's plaintext authtoken table: each key becomes a knox digest, the table goes."""
    import importlib

    from django.apps import apps

    upgrade = importlib.import_module("core.migrations.0001_hash_plaintext_api_tokens")
    owner, old_key = UserFactory(username="veteran"), "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id integer)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s)", [old_key, owner.pk])

    class Editor:  # what RunPython hands the function, without DDL transaction rules getting in the way
        def __init__(self):
            self.connection = connection

        def execute(self, sql):
            with connection.cursor() as cursor:
                cursor.execute(sql)

    upgrade.hash_plaintext_tokens(apps, Editor())
    assert "authtoken_token" not in connection.introspection.table_names()
    assert _authed(old_key).get(reverse("optout-list")).status_code == 200
    assert not AuthToken.objects.filter(digest=old_key).exists()
