"""The answer django-axes gives once a username is locked out: JSON for the API, a short page for the site."""

from __future__ import annotations

import math

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    cool_off = get_cool_off(request)
    minutes = max(1, math.ceil(cool_off.total_seconds() / 60)) if cool_off else None
    wait = f"Try again in {minutes} minute{'s' if minutes != 1 else ''}." if minutes else "Ask an operator."
    message = f"Too many failed sign-ins for this username: it is locked. {wait}"
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"message": message, "extra": {"locked": True}}, status=429)
    else:
        response = HttpResponse(render_to_string("core/locked_out.html", {"message": message}), status=429)
    if cool_off:
        response["Retry-After"] = str(math.ceil(cool_off.total_seconds()))
    return response
