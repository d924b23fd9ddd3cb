"""Generation (prompt -> image with its contributor shares) and the contributor-share report (staff).

The generator app may not be installed yet: every view imports it inside a guard and shows "not available yet".
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.exceptions import ApplicationError
from web.forms import GenerateForm, ReportForm


def _generator():
    """(services, selectors, models) of the generator app, or None while it is not installed."""
    try:
        from generator import models, selectors, services
    except ImportError:
        return None
    return services, selectors, models


@login_required
def generate(request: HttpRequest) -> HttpResponse:
    gen = _generator()
    if gen is None:
        return render(request, "web/unavailable.html", {"what": "Image generation"}, status=503)
    services, selectors, _models = gen
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
    gen = _generator()
    if gen is None:
        raise Http404("The generator is not available.")
    _services, selectors, _models = gen
    user = None if request.user.is_staff else request.user
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
    gen = _generator()
    if gen is None:
        return None, None
    form = ReportForm(request.GET or None, initial={"method": "gradient", "pool": 1000})
    data = (
        form.cleaned_data
        if form.is_bound and form.is_valid()
        else {"method": "gradient", "pool": Decimal(1000)}
    )
    import datetime as dt

    def at(day):
        return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC) if day else None

    report = gen[1].contributor_share_report(
        start=at(data.get("start")), end=at(data.get("end")), method=data["method"], pool=data["pool"]
    )
    return form, report


@staff_member_required(login_url="web:login")
def reports(request: HttpRequest) -> HttpResponse:
    form, report = _report(request)
    if report is None:
        return render(request, "web/unavailable.html", {"what": "Contributor-share reports"}, status=503)
    query = request.GET.urlencode()
    return render(request, "web/reports.html", {"form": form, "report": report, "query": query})


@staff_member_required(login_url="web:login")
def report_chart(request: HttpRequest) -> HttpResponse:
    from generator.reports import report_chart as chart

    _form, report = _report(request)
    if report is None:
        raise Http404("The generator is not available.")
    return HttpResponse(chart(report, fmt="png"), content_type="image/png")


@staff_member_required(login_url="web:login")
def report_csv(request: HttpRequest) -> HttpResponse:
    from generator.reports import report_csv as to_csv

    _form, report = _report(request)
    if report is None:
        raise Http404("The generator is not available.")
    response = HttpResponse(to_csv(report), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="contributor-shares-{report.method}.csv"'
    return response
