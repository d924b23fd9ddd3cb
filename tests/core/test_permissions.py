"""One definition of "operator" (core.permissions) behind every operator-only door: a superuser, or a staff account
in the operators group. Membership of the group without staff, or staff without the group, opens none of them."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from core.permissions import OPERATORS_GROUP, is_operator
from tests.core.factories import OperatorFactory, UserFactory

pytestmark = pytest.mark.django_db


def _group_member(**kwargs):
    user = UserFactory(**kwargs)
    user.groups.add(Group.objects.get_or_create(name=OPERATORS_GROUP)[0])
    return user


ACCOUNTS = {
    "operator": (lambda: OperatorFactory(), True),
    "superuser": (lambda: UserFactory(is_staff=True, is_superuser=True), True),
    "group member without staff": (lambda: _group_member(), False),
    "staff outside the group": (lambda: UserFactory(is_staff=True), False),
    "artist": (lambda: UserFactory(), False),
}


def _api_doors(user) -> dict[str, bool]:
    """Each operator-only API, and whether it let the user past its permission check (403 is the refusal)."""
    client = APIClient()
    client.force_authenticate(user)
    answers = {
        "optout: review an identity claim": client.post(
            reverse("contributor-claim-review", args=[999999]), {"approve": True}, format="json"
        ),
        "training_filter: start a manifest build": client.post(
            reverse("training_filter:build-list"), {"collection": "no-such-collection"}, format="json"
        ),
        "generator: override a stale model": client.post(
            reverse("generator-generate"), {"prompt": "an apple", "override_stale": True}, format="json"
        ),
        "generator: contributor-share report": client.get(reverse("generator-report")),
        "provenance: ingest runs": client.get(reverse("ingest-run-list")),
    }
    return {door: response.status_code != 403 for door, response in answers.items()}


def _page_doors(user) -> dict[str, bool]:
    client = Client()
    client.force_login(user)
    response = client.get(reverse("web:reports"))
    return {"web: contributor-share report page": response.status_code == 200}


@pytest.mark.parametrize("account", list(ACCOUNTS))
def test_every_app_lets_in_exactly_the_operators(account):
    make, operator = ACCOUNTS[account]
    user = make()

    doors = {**_api_doors(user), **_page_doors(user)}

    assert is_operator(user) is operator
    assert doors == dict.fromkeys(doors, operator)


def test_an_anonymous_visitor_is_no_operator():
    from django.contrib.auth.models import AnonymousUser

    assert is_operator(AnonymousUser()) is False
