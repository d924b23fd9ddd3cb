"""Pixels served by id only: asset thumbnails (sized, cached, ETag) and generated images (their creator or staff)."""

from __future__ import annotations

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.views.decorators.http import require_GET

from core.permissions import is_operator
from generator.models import GeneratedImage
from provenance.models import Asset
from web.thumbnails import SIZES, ThumbnailUnavailable, thumb_etag, thumbnail_bytes

THUMB_MAX_AGE = 7 * 24 * 3600


@require_GET
def thumbnail(request: HttpRequest, asset_id: int, size: int) -> HttpResponse:
    from core.exclusions import collect_exclusions

    if size not in SIZES:
        raise Http404("Unknown thumbnail size.")
    asset = Asset.objects.filter(pk=asset_id).only("id", "sha256", "local_path").first()
    hidden, _flagged = collect_exclusions(request.user)
    if asset is None or asset.pk in hidden:  # an opted-out work is not shown to anyone but its owner
        raise Http404("No such work.")
    etag = thumb_etag(asset, size)
    if etag in request.headers.get("If-None-Match", ""):
        response: HttpResponse = HttpResponseNotModified()
    else:
        try:
            response = HttpResponse(thumbnail_bytes(asset, size), content_type="image/jpeg")
        except ThumbnailUnavailable as exc:
            raise Http404("This work has no picture to show.") from exc
    response["ETag"] = etag
    # private: visibility depends on who asks (opted-out works are hidden from others)
    response["Cache-Control"] = f"private, max-age={THUMB_MAX_AGE}"
    response["Vary"] = "Cookie"
    return response


@require_GET
def generated_image(request: HttpRequest, image_id: int) -> FileResponse:
    image = GeneratedImage.objects.filter(pk=image_id).first()
    if image is None or not _may_see(request, image):
        raise Http404("No such image.")
    response = FileResponse(image.image.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400"
    return response


def _may_see(request: HttpRequest, image) -> bool:
    user = request.user
    return bool(user.is_authenticated and (is_operator(user) or image.created_by_id == user.pk))
