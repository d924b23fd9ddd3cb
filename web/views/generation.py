"""Generation (prompt -> image with its contributor shares) and the contributor-share report (operators)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required, user_passes_test
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.exceptions import ApplicationError
from core.permissions import is_operator
from generator import selectors, services
from generator.reports import report_chart as chart
from generator.reports import report_csv as to_csv
from web.forms import GenerateForm, ReportForm

operator_required = user_passes_test(is_operator, login_url="web:login")


@login_required
def generate(request: HttpRequest) -> HttpResponse:
    current = selectors.generator_model_current()
    form = GenerateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            (image,) = services.generated_images_create(
                prompt=form.cleaned_data["prompt"], seed=form.cleaned_data.get("seed"), user=request.user
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            return redirect("web:generated", image_id=image.pk)
    recent = selectors.generated_image_list(user=request.user).order_by("-id")[:12]
    return render(request, "web/generate.html", {"form": form, "current": current, "recent": recent})


@login_required
def generated(request: HttpRequest, image_id: int) -> HttpResponse:
    user = None if is_operator(request.user) else request.user
    image = selectors.generated_image_list(user=user).filter(pk=image_id).first()
    if image is None:
        raise Http404("No such image.")
    attributions = [
        {"label": record.label, "method": record.method, "version": record.method_version,
         "shares": sorted(record.shares.items(), key=lambda kv: (kv[0] == "others", -kv[1]))}
        for record in image.attributions.all()
    ]  # fmt: skip
    return render(request, "web/generated.html", {"image": image, "attributions": attributions})


def _report(request: HttpRequest):
    form = ReportForm(request.GET or None, initial={"method": "gradient", "pool": 1000})
    data: dict[str, Any] = (
        form.cleaned_data
        if form.is_bound and form.is_valid()
        else {"method": "gradient", "pool": Decimal(1000)}
    )
    import datetime as dt

    def at(day):
        return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC) if day else None

    report = selectors.contributor_share_report(
        start=at(data.get("start")), end=at(data.get("end")), method=data["method"], pool=data["pool"]
    )
    return form, report


@operator_required
def reports(request: HttpRequest) -> HttpResponse:
    form, report = _report(request)
    query = request.GET.urlencode()
    return render(request, "web/reports.html", {"form": form, "report": report, "query": query})


@operator_required
def report_chart(request: HttpRequest) -> HttpResponse:
    _form, report = _report(request)
    return HttpResponse(chart(report, fmt="png"), content_type="image/png")


@operator_required
def report_csv(request: HttpRequest) -> HttpResponse:
    _form, report = _report(request)
    response = HttpResponse(to_csv(report), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="contributor-shares-{report.method}.csv"'
    return response
