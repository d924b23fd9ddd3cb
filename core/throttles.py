"""Rate limits for the API and the pages, with one set of rates (REST_FRAMEWORK's DEFAULT_THROTTLE_RATES).

The client address comes from REMOTE_ADDR unless REST_FRAMEWORK's NUM_PROXIES says how many proxies in front of
the site append to X-Forwarded-For: a header the client writes itself never picks its own throttle bucket.
Rates are read at request time (tests and deployments change them without re-importing DRF), and
PROVENANT_THROTTLE_ENABLED=False switches every throttle off.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, ScopedRateThrottle


def client_address(request: HttpRequest) -> str:
    """The caller's address as the throttles see it (REMOTE_ADDR, or the NUM_PROXIES-th address from the right
    of X-Forwarded-For when the site sits behind that many trusted proxies)."""
    return BaseThrottle().get_ident(Request(request)) or ""


class SettingsScopedRateThrottle(ScopedRateThrottle):
    """DRF's ScopedRateThrottle (views set `throttle_scope`), keyed per user when authenticated, else per address.
    A view may set `throttle_methods` (e.g. ("POST",)) so reading a list does not spend its create budget."""

    def allow_request(self, request, view) -> bool:
        if not getattr(settings, "PROVENANT_THROTTLE_ENABLED", True):
            return True
        methods = getattr(view, "throttle_methods", None)
        if methods is not None and request.method not in methods:
            return True
        return super().allow_request(request, view)

    def get_rate(self):
        rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope)


class TokenRateThrottle(SettingsScopedRateThrottle):
    """Per API token rather than per user: each of an operator's pipelines has its own budget."""

    def get_cache_key(self, request, view):
        token_key = getattr(getattr(request, "auth", None), "token_key", None)
        if token_key is None:
            return super().get_cache_key(request, view)
        return self.cache_format % {"scope": self.scope, "ident": f"token:{token_key}"}


class _PageView:
    """What a DRF throttle reads from a view, for a plain Django view."""

    def __init__(self, scope: str, methods: tuple[str, ...]):
        self.throttle_scope = scope
        self.throttle_methods = methods


def throttle(scope: str, *, methods: tuple[str, ...] = ("POST",)) -> Callable:
    """Decorate a page view with the API's throttle of `scope`: past the rate it answers 429 with Retry-After."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            limiter = SettingsScopedRateThrottle()
            if limiter.allow_request(request, _PageView(scope, methods)):
                return view(request, *args, **kwargs)
            return too_many_requests(limiter.wait())

        return wrapped

    return decorate


def too_many_requests(wait_s: float | None) -> HttpResponse:
    seconds = max(1, math.ceil(wait_s or 1))
    body = render_to_string("core/too_many_requests.html", {"seconds": seconds})
    response = HttpResponse(body, status=429)
    response["Retry-After"] = str(seconds)
    return response
