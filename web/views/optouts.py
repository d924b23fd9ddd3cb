"""The opt-out flow: a confirmation page from a search result, "my opt-outs" with status and history, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.exceptions import ApplicationError
from core.throttles import throttle
from optout.models import OptOut
from provenance.models import Asset
from web import selectors
from web.forms import OptOutConfirmForm

PREVIEW_COPIES = 24


@login_required
@throttle("optout_create")
def optout_confirm(request: HttpRequest) -> HttpResponse:
    """GET shows what would be opted out (the work, and its near-copies for that scope); POST creates it."""
    source = request.POST if request.method == "POST" else request.GET
    form = OptOutConfirmForm(source if request.method == "POST" else None, initial=source.dict())
    asset = _asset_or_404(source.get("asset"))
    labels: dict[str, str] = dict(OptOutConfirmForm.SCOPES)
    requested = source.get("scope", "")
    scope = requested if requested in labels else OptOut.Scope.WORKS
    if request.method == "POST" and form.is_valid():
        try:
            optout = _create(request, asset=asset, scope=scope, reason=form.cleaned_data["reason"])
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            state = (
                "is active: the works are out" if optout.status == OptOut.Status.ACTIVE else "awaits review"
            )
            messages.success(request, f"Opt-out request #{optout.pk} {state}.")
            return redirect("web:my-optouts")
    copies = _near_copies(asset) if scope == OptOut.Scope.NEAR_COPIES else [asset.pk]
    context = {"form": form, "asset": asset, "scope": scope, "copies": copies[:PREVIEW_COPIES],
               "copy_count": len(copies), "scope_label": labels[scope]}  # fmt: skip
    return render(request, "web/optout_confirm.html", context, status=400 if form.errors else 200)


def _asset_or_404(raw: str | None) -> Asset:
    try:
        return Asset.objects.select_related("contributor").get(pk=int(raw or ""))
    except (ValueError, Asset.DoesNotExist) as exc:
        raise Http404("No such work.") from exc


def _near_copies(asset: Asset) -> list[int]:
    from optout.services import near_copies_of

    return sorted({asset.pk, *near_copies_of(asset.pk)})


def _create(request: HttpRequest, *, asset: Asset, scope: str, reason: str) -> OptOut:
    from optout.services import optout_create

    if scope == OptOut.Scope.NEAR_COPIES:
        optout, _ = optout_create(artist=request.user, scope=scope, asset_id=asset.pk, reason=reason)
    else:
        optout, _ = optout_create(artist=request.user, scope=scope, asset_ids=[asset.pk], reason=reason)
    return optout


@login_required
def my_optouts(request: HttpRequest) -> HttpResponse:
    rows = [
        {"optout": optout, "preview_ids": selectors.optout_asset_ids(optout=optout, limit=8)}
        for optout in selectors.artist_optouts(artist=request.user)[:100]
    ]
    return render(request, "web/my_optouts.html", {"rows": rows})


@login_required
@require_POST
def optout_revoke(request: HttpRequest, optout_id: int) -> HttpResponse:
    from optout.services import optout_revoke as revoke

    optout = get_object_or_404(OptOut, pk=optout_id, artist=request.user)  # only the artist's own
    revoke(optout=optout, artist=request.user)
    messages.success(request, f"Opt-out #{optout.pk} is revoked: these works may be used for training again.")
    return redirect("web:my-optouts")
