"""The artist's whole path on real fixture works (openclipart SVGs), through the HTTP APIs: sign up, find the
work by picture, claim the identity, opt out the work and its re-hosted copy, see it gone from others' search and
from the check API (timed), flagged in the owner's search, and the audit log intact."""

import hashlib
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from tests.core.factories import OperatorFactory, UserFactory
from tests.optout.conftest import client_for
from tests.provenance.factories import AssetFactory, CollectionFactory, ContributorFactory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openclipart"
WORK_COUNT = 6


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


@pytest.fixture
def fixture_works(db, search_stack, tmp_path):
    """Real works credited to one contributor on one domain, plus a re-encoded copy re-hosted elsewhere."""
    from embeddings.services import index_collection
    from provenance.hashing import compute_hashes
    from provenance.imaging import load_rgb, load_rgb_path

    collection = CollectionFactory(name="fixtures")
    ada = ContributorFactory(display_name="Ada Painter", name_key="adapainter")
    assets, images = [], []
    for i, path in enumerate(sorted(FIXTURES.rglob("*.svg"))[:WORK_COUNT]):
        image = load_rgb_path(path).image
        phash, pdq, quality = compute_hashes(image)
        images.append(image)
        assets.append(AssetFactory(
            collection=collection, source=str(path.relative_to(FIXTURES)), url=f"https://ada.example/works/{i}.svg",
            domain="ada.example", local_path=str(path), sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            format="SVG", title=path.stem, contributor=ada if i < 3 else None, phash=phash, pdq=pdq,
            pdq_quality=quality,
        ))  # fmt: skip
    copy_bytes = _jpeg(images[0])
    copy_path = tmp_path / "rehosted.jpg"
    copy_path.write_bytes(copy_bytes)
    copy_image = load_rgb(copy_bytes).image
    phash, pdq, quality = compute_hashes(copy_image)
    copy = AssetFactory(
        collection=collection, source="rehosted.jpg", url="https://mirror.example/x/cat.jpg", domain="mirror.example",
        local_path=str(copy_path), sha256=hashlib.sha256(copy_bytes).hexdigest(), format="JPEG",
        title="re-hosted copy", phash=phash, pdq=pdq, pdq_quality=quality,
    )  # fmt: skip
    index_collection(collection_name="fixtures")
    return {"assets": assets, "copy": copy, "images": images, "contributor": ada}


def _search(client, image) -> dict[int, dict]:
    upload = io.BytesIO(_jpeg(image))
    upload.name = "query.jpg"
    response = client.post(reverse("search-image"), {"image": upload, "top": 20}, format="multipart")
    assert response.status_code == 200, response.content
    return {hit["asset_id"]: hit for hit in response.json()["results"]}


def test_artist_opts_out_a_work_and_its_copy_and_it_is_gone_from_search_and_check(fixture_works):
    work, copy = fixture_works["assets"][0], fixture_works["copy"]
    anonymous = client_for(None)
    signup = {"username": "ada", "email": "ada@example.org", "password": "a long passphrase 42"}
    token = anonymous.post(reverse("artist-signup"), signup, format="json").json()["token"]
    ada = client_for(None)
    ada.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    operator = client_for(OperatorFactory())
    pipeline = client_for(OperatorFactory(username="pipeline"))

    # 1. the artist finds her work and its re-hosted copy by picture
    hits = _search(ada, fixture_works["images"][0])
    assert {work.pk, copy.pk} <= set(hits)

    # 2. she claims the identity; an operator approves it from the review queue
    claim = ada.post(reverse("contributor-claim-list"), {"contributor_id": fixture_works["contributor"].pk},
                     format="json").json()  # fmt: skip
    assert claim["status"] == "pending"
    review = operator.post(reverse("contributor-claim-review", kwargs={"claim_id": claim["id"]}), {"approve": True},
                           format="json")  # fmt: skip
    assert review.json()["status"] == "verified"

    # 3. she opts out the work and its near-copies: active at once (verified work), and the very next check and
    # search leave them out, with no index rebuild (the latency itself is measured in benchmarks/check_api.py)
    response = ada.post(reverse("optout-list"), {"scope": "near_copies", "asset_id": work.pk}, format="json",
                        HTTP_IDEMPOTENCY_KEY="first-try")  # fmt: skip
    assert response.status_code == 201 and response.json()["status"] == "active"
    assert {work.pk, copy.pk} <= set(response.json()["asset_ids"])
    checked = pipeline.post(
        reverse("optout-check"),
        {
            "items": [
                {"sha256": work.sha256},
                {"url": copy.url},
                {"phash": copy.phash},
                {"url": "https://x.example/a"},
            ]
        },
        format="json",
    ).json()["results"]
    others_hits = _search(anonymous, fixture_works["images"][0])
    assert [r["allowed"] for r in checked] == [False, False, False, True]
    assert work.pk not in others_hits and copy.pk not in others_hits

    # 4. the owner still sees them, flagged
    own_hits = _search(ada, fixture_works["images"][0])
    assert own_hits[work.pk]["opted_out"] and own_hits[copy.pk]["opted_out"]

    # 5. a replay changes nothing; the audit log verifies
    replay = ada.post(reverse("optout-list"), {"scope": "near_copies", "asset_id": work.pk}, format="json",
                      HTTP_IDEMPOTENCY_KEY="first-try")  # fmt: skip
    assert replay.status_code == 200 and replay.json()["id"] == response.json()["id"]

    # 6. nobody else can release them: a stranger's revocation is refused and the caches keep them hidden; the
    # owner's revocation shows them again at once, in the check and in search (each cache follows the change log)
    revoke = reverse("optout-revoke", kwargs={"optout_id": response.json()["id"]})
    stranger = client_for(UserFactory(username="another-artist"))
    assert stranger.post(revoke, format="json").status_code in (403, 404)
    items = {"items": [{"sha256": work.sha256}, {"phash": copy.phash}]}
    assert [
        r["allowed"] for r in pipeline.post(reverse("optout-check"), items, format="json").json()["results"]
    ] == [
        False,
        False,
    ]
    assert work.pk not in _search(anonymous, fixture_works["images"][0])
    assert ada.post(revoke, format="json").json()["status"] == "revoked"
    assert [
        r["allowed"] for r in pipeline.post(reverse("optout-check"), items, format="json").json()["results"]
    ] == [
        True,
        True,
    ]
    assert {work.pk, copy.pk} <= set(_search(anonymous, fixture_works["images"][0]))
    call_command("verify_audit")
