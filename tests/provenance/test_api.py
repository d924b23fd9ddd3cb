import pytest

from provenance import services
from provenance.models import Asset
from tests.core.factories import OperatorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ingested(openclipart_dir):
    run = services.ingest_run_create(
        path=str(openclipart_dir / "signs_and_symbols"), collection_name="fixture"
    )
    return services.ingest_run_execute(run_id=run.id, workers=1)


def test_assets_are_listed_paginated_and_filtered_by_collection_and_contributor(api_client, ingested):
    asset = Asset.objects.exclude(contributor=None).first()

    page = api_client.get("/api/assets/", {"collection": "fixture", "page_size": 5}).json()
    mine = api_client.get("/api/assets/", {"contributor": asset.contributor_id}).json()
    other = api_client.get("/api/assets/", {"collection": "nothing-here"}).json()

    assert page["count"] == ingested.new and len(page["results"]) == 5 and page["next"]
    assert mine["count"] == Asset.objects.filter(contributor=asset.contributor).count()
    assert {r["contributor"]["id"] for r in mine["results"]} == {asset.contributor_id}
    assert other["count"] == 0


def test_contributors_are_searchable_by_alias(api_client, ingested):
    asset = Asset.objects.exclude(contributor=None).first()
    fragment = asset.creator_raw[:6]

    found = api_client.get("/api/contributors/", {"name": fragment}).json()["results"]

    assert asset.contributor_id in {c["id"] for c in found}
    assert all(c["asset_count"] >= 1 for c in found)


def test_ingest_runs_are_visible_to_operators_only(api_client, ingested):
    assert api_client.get("/api/ingest-runs/").status_code in (401, 403)
    operator = OperatorFactory(username="op")
    api_client.force_authenticate(operator)

    run = api_client.get(f"/api/ingest-runs/{ingested.id}/").json()

    assert (run["status"], run["new"], run["collection"]) == ("done", ingested.new, "fixture")


def test_the_openapi_schema_and_docs_page_are_served(client):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200 and b"/api/assets/" in schema.content
    assert docs.status_code == 200
