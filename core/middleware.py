"""Request body limits, enforced from Content-Length before any parser (DRF's, Django's form parsing, the CSRF
check's) reads a byte. Django hands a view at most Content-Length bytes, so the declared length is the bound.

A view may name the setting that holds its own limit (`max_body_setting = "OPTOUT_CHECK_MAX_BODY_BYTES"`);
otherwise multipart uploads get PROVENANT_MAX_UPLOAD_BYTES plus room for the form, and any other body
PROVENANT_MAX_BODY_BYTES.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from rest_framework.views import APIView

FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries, the CSRF token and a few short fields


def _view_class(view_func: Callable) -> type | None:
    return getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)


def body_limit(request: HttpRequest, view_func: Callable) -> int:
    name = getattr(_view_class(view_func) or view_func, "max_body_setting", None)
    if name:
        return int(getattr(settings, name))
    if request.content_type == "multipart/form-data":
        return settings.PROVENANT_MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES
    return settings.PROVENANT_MAX_BODY_BYTES


def _declared_length(request: HttpRequest) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0  # Django reads no body at all when the length is not a number


class RequestBodyLimitMiddleware:
    """Answers 413 (JSON for the API, a short page otherwise) when a body is larger than its view accepts."""

    def __init__(self, get_response: Callable):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Callable, view_args, view_kwargs):
        length, limit = _declared_length(request), body_limit(request, view_func)
        if length <= limit:
            return None
        message = f"The request body is {length:,} bytes; this endpoint accepts at most {limit:,}."
        view_class = _view_class(view_func)
        if view_class is not None and issubclass(view_class, APIView):
            extra = {"limit_bytes": limit, "content_length": length}
            return JsonResponse({"message": message, "extra": extra}, status=413)
        return HttpResponse(render_to_string("core/request_too_large.html", {"message": message}), status=413)
