"""The operator dashboard (staff only): review queue, indexing and manifest builds with live progress, generator
staleness."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.exceptions import ApplicationError
from core.permissions import is_operator
from core.selectors import leases_unfinished
from optout.models import ContributorClaim, OptOut
from web import selectors


@staff_member_required(login_url="web:login")
def dashboard(request: HttpRequest) -> HttpResponse:
    builds = selectors.manifest_builds()
    runs = selectors.index_runs()
    index_rows = selectors.index_progress_rows(runs)
    build_rows = selectors.build_progress_rows(builds)
    context = {
        "index_rows": index_rows,
        "index_running": any(row["running"] for row in index_rows),
        **selectors.review_queue(),
        "can_review": is_operator(request.user),
        "builds": builds,
        "build_rows": build_rows,
        "builds_running": any(row["running"] for row in build_rows),
        "generators": selectors.generator_models(),
        "units": leases_unfinished(),
    }
    return render(request, "web/dashboard.html", context)


@staff_member_required(login_url="web:login")
def builds_progress(request: HttpRequest) -> JsonResponse:
    """Polled by the dashboard while a build runs."""
    return JsonResponse({"builds": selectors.build_progress_rows(selectors.manifest_builds())})


@staff_member_required(login_url="web:login")
def index_progress(request: HttpRequest) -> JsonResponse:
    """Polled by the dashboard while a collection is being indexed (parts embedded in the background)."""
    return JsonResponse({"runs": selectors.index_progress_rows(selectors.index_runs())})


def _operator_or_403(request: HttpRequest) -> None:
    if not is_operator(request.user):
        raise PermissionDenied("Only operators review requests.")


@staff_member_required(login_url="web:login")
@require_POST
def optout_review(request: HttpRequest, optout_id: int) -> HttpResponse:
    from optout.services import optout_approve, optout_reject

    _operator_or_403(request)
    optout = get_object_or_404(OptOut, pk=optout_id)
    note = request.POST.get("note", "")[:1000]
    try:
        if request.POST.get("decision") == "approve":
            optout_approve(optout=optout, operator=request.user, note=note)
        else:
            optout_reject(optout=optout, operator=request.user, note=note)
    except ApplicationError as exc:
        messages.error(request, f"Opt-out #{optout.pk}: {exc.message}")
    else:
        messages.success(request, f"Opt-out #{optout.pk} is now {optout.status}.")
    return redirect("web:dashboard")


@staff_member_required(login_url="web:login")
@require_POST
def claim_review(request: HttpRequest, claim_id: int) -> HttpResponse:
    from optout.services import contributor_claim_review

    _operator_or_403(request)
    claim = get_object_or_404(ContributorClaim, pk=claim_id)
    try:
        claim = contributor_claim_review(
            claim=claim, reviewer=request.user, approve=request.POST.get("decision") == "approve"
        )
    except ApplicationError as exc:
        messages.error(request, f"Claim #{claim.pk}: {exc.message}")
    else:
        messages.success(request, f"Claim #{claim.pk} is now {claim.status}.")
    return redirect("web:dashboard")
