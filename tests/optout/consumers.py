"""What each consumer of the registry makes of a work (the check API, the asset API, thumbnails, search, a
manifest build), asked the way an outside caller asks: the tests of who may hide what assert through these."""

from __future__ import annotations

import numpy as np
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from tests.core.factories import UserFactory
from tests.optout.conftest import client_for
from tests.provenance.factories import AssetFactory

CHECK = "/api/check/"


def work(**fields):
    """A fixture work in the collection `demo`, with real pixels on disk (thumbnails render from them) unless
    `local_path=""` is asked for."""
    from django.conf import settings

    without_pixels = fields.pop("local_path", None) == ""
    asset = AssetFactory(**fields)
    if without_pixels:
        return asset
    folder = settings.DATA_DIR / "works"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{asset.pk}.png"
    pixels = np.random.default_rng(asset.pk).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    asset.local_path = str(path)
    asset.save(update_fields=["local_path"])
    return asset


def denied_by_check(asset) -> bool:
    item = {"url": asset.url, "sha256": asset.sha256, "phash": asset.phash}
    body = client_for(UserFactory(username="crawler")).post(CHECK, {"items": [item]}, format="json").json()
    return not body["results"][0]["allowed"]


def check_url(url: str) -> dict:
    body = client_for(UserFactory(username="crawler")).post(CHECK, {"items": [{"url": url}]}, format="json")
    return body.json()["results"][0]


def hidden_from_anonymous(asset) -> dict[str, bool]:
    """What an anonymous visitor sees of a work: the asset API, its thumbnail, a domain search."""
    anonymous = APIClient()
    found = anonymous.get("/api/search/", {"domain": asset.domain}).json().get("results", [])
    return {
        "asset_api": anonymous.get(f"/api/assets/{asset.pk}/").status_code == 404,
        "thumbnail": anonymous.get(reverse("web:thumbnail", args=[asset.pk, 160])).status_code == 404,
        "search": asset.pk not in {r["asset_id"] for r in found},
    }


def kept_by_manifest_build(django_capture_on_commit_callbacks) -> set[int]:
    import pyarrow.dataset as pads

    from training_filter import services as builds

    with django_capture_on_commit_callbacks(execute=True):
        build = builds.manifest_build_create(collection="demo")
    build.refresh_from_db()
    assert build.status == "published", build.error
    return set(pads.dataset(f"{build.output_path}/data").to_table().column("asset_id").to_pylist())


def verify_domain(user, domain: str, monkeypatch) -> dict:
    """Through the API: claim, publish the token (the fetcher answers it), verify."""
    from optout import verification

    client = client_for(user)
    claim = client.post(reverse("domain-claim-list"), {"domain": domain}, format="json").json()
    monkeypatch.setattr(verification, "fetch_http", lambda url: claim["token"])
    response = client.post(reverse("domain-claim-verify", kwargs={"claim_id": claim["id"]}))
    assert response.status_code == 200, response.content
    return response.json()
