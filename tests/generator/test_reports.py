import csv
import io
from decimal import Decimal

import pytest

from generator.models import AttributionRecord


@pytest.fixture
def ledger(trained_model):
    from generator.services import generated_image_create

    for seed in range(4):
        generated_image_create(prompt="arrow", seed=seed)
    return AttributionRecord.objects.all()


def _ledger_totals(method: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for rec in AttributionRecord.objects.filter(method=method):
        for k, v in rec.shares.items():
            totals[k] = totals.get(k, 0.0) + v
    return totals


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["gradient", "similarity"])
def test_report_totals_equal_the_ledger(ledger, method):
    from generator.selectors import contributor_share_report

    report = contributor_share_report(start=None, end=None, method=method, pool=Decimal("1000"))
    assert report.images == 4
    assert {r.contributor: r.total_share for r in report.rows} == pytest.approx(_ledger_totals(method))
    assert sum(r.payout for r in report.rows) == pytest.approx(Decimal("1000"), abs=Decimal("0.05"))
    assert report.label == ("influence" if method == "gradient" else "similarity")


@pytest.mark.django_db
def test_report_period_excludes_images_outside_it(ledger):
    from generator.selectors import contributor_share_report

    report = contributor_share_report(
        start=None,
        end=ledger.order_by("image__created_at").first().image.created_at,
        method="gradient",
        pool=Decimal("10"),
    )
    assert report.images == 0 and report.rows == []


@pytest.mark.django_db
def test_report_api_serves_json_csv_and_chart_to_operators(ledger, operator, api_client):
    api_client.force_authenticate(operator)
    url = "/api/reports/contributor-shares/?pool=500&method=similarity"
    body = api_client.get(url + "&format=json").json()
    assert body["label"] == "similarity" and body["images"] == 4
    assert sum(Decimal(r["payout"]) for r in body["rows"]) == pytest.approx(
        Decimal("500"), abs=Decimal("0.05")
    )
    csv_resp = api_client.get(url + "&format=csv")
    assert csv_resp["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_resp.content.decode())))
    assert "total_similarity_share" in rows[0]
    assert sum(float(r["total_similarity_share"]) for r in rows) == pytest.approx(4.0, abs=1e-4)
    png = api_client.get(url + "&format=png")
    assert png["Content-Type"] == "image/png" and png.content[:4] == b"\x89PNG"


@pytest.mark.django_db
def test_report_api_is_for_operators_only(ledger, member, api_client):
    api_client.force_authenticate(member)
    assert api_client.get("/api/reports/contributor-shares/?pool=1").status_code == 403


@pytest.mark.django_db
def test_report_api_rejects_a_bad_pool(ledger, operator, api_client):
    api_client.force_authenticate(operator)
    resp = api_client.get("/api/reports/contributor-shares/?pool=lots")
    assert resp.status_code == 400 and "pool" in resp.json()["message"]


def _report_of(*names: str):
    from generator.selectors import ReportRow, ShareReport

    rows = [ReportRow(name, 1.0, 1, Decimal("1.00")) for name in names]
    return ShareReport("gradient", "influence", None, None, Decimal(len(rows)), len(rows), rows)


def test_csv_never_hands_a_spreadsheet_a_formula():
    from generator.reports import report_csv

    names = ['=HYPERLINK("http://evil.example","x")', "+1 555", "-dash", "@sum", "Ada Painter"]
    rows = list(csv.reader(io.StringIO(report_csv(_report_of(*names)))))[1:]
    assert [r[0] for r in rows] == ["'" + n for n in names[:4]] + ["Ada Painter"]


def test_the_chart_draws_names_that_look_like_mathematics():
    from generator.reports import report_chart

    png = report_chart(_report_of(r"Ann $\frac$ Lee", "$$", "Bo $5"))
    assert png[:4] == b"\x89PNG"
