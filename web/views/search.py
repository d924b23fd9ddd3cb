"""Home page: search by upload or by words, results in two tiers ("this is your work", "might be related");
the contributor page."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from core.exceptions import ApplicationError, ImageUnreadable, PayloadTooLarge
from core.throttles import throttle
from web import selectors
from web.forms import SearchForm

RESULTS = 24  # cards on the page at first
MORE_RESULTS = 24  # behind "more results", fetched with the first ones: an upload cannot be searched again


@throttle("search", methods=("GET", "POST"))
def home(request: HttpRequest) -> HttpResponse:
    """GET with ?q= searches by words; POST (multipart) searches by picture. Errors come back in the page."""
    if request.method == "POST":
        form = SearchForm(request.POST, request.FILES)
    elif request.GET.get("q"):
        form = SearchForm(request.GET)
    else:
        return render(request, "web/home.html", {"form": SearchForm()})
    tiers, searched, status = None, "", 200
    if form.is_valid():
        try:
            hits, searched = _run_search(request, form.cleaned_data)
            tiers = selectors.result_tiers(hits, shown=RESULTS)
        except ApplicationError as exc:
            form.add_error("image" if form.cleaned_data.get("image") else "q", _friendly(exc))
            status = exc.status_code
    else:
        status = 413 if form.has_error("image", code="too_large") else 400
    context = {"form": form, "tiers": tiers, "searched": searched}
    return render(request, "web/home.html", context, status=status)


def _run_search(request: HttpRequest, data: dict) -> tuple[list, str]:
    from embeddings import selectors as search_selectors
    from embeddings.search.cascade import search_image_bytes

    user, top = request.user, RESULTS + MORE_RESULTS
    if data.get("image"):
        upload = data["image"]
        return search_image_bytes(upload.read(), top_k=top, user=user), f"the picture {upload.name}"
    words = data["q"].strip()
    kind = data.get("kind") or "text"
    if kind == "contributor":
        return search_selectors.search_contributor(words, top_k=top, user=user), f"contributor “{words}”"
    if kind == "domain":
        return search_selectors.search_domain(words, top_k=top, user=user), f"works hosted on “{words}”"
    return search_selectors.search_text(words, top_k=top, user=user), f"“{words}”"


def _friendly(exc: ApplicationError) -> str:
    if isinstance(exc, ImageUnreadable) and exc.too_large_to_open:
        return f"This picture is too large to open safely ({exc.reason}). Please upload a smaller copy."
    if isinstance(exc, ImageUnreadable):
        return f"We could not read this file as a picture ({exc.reason})."
    if isinstance(exc, PayloadTooLarge):
        return f"This file is too big: {exc.message}."
    return exc.message


def contributor(request: HttpRequest, contributor_id: int) -> HttpResponse:
    from core.exclusions import collect_exclusions

    person = selectors.contributor_detail(contributor_id=contributor_id)
    if person is None:
        raise Http404("No such contributor.")
    hidden, flagged = collect_exclusions(request.user)
    works = person.assets.exclude(id__in=hidden).order_by("id")[:120]
    context = {"person": person, "works": works, "flagged": flagged, "hidden_count": len(hidden)}
    return render(request, "web/contributor.html", context)
