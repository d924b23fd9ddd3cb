"""Scoped throttles that read their rates from settings at request time (so tests and deployments can change
them without re-importing DRF) and can be switched off with PROVENANT_THROTTLE_ENABLED=False."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import ScopedRateThrottle


class SettingsScopedRateThrottle(ScopedRateThrottle):
    """DRF's ScopedRateThrottle (views set `throttle_scope`), keyed per user when authenticated, else per IP."""

    def allow_request(self, request, view) -> bool:
        if not getattr(settings, "PROVENANT_THROTTLE_ENABLED", True):
            return True
        return super().allow_request(request, view)

    def get_rate(self):
        rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
        return rates.get(self.scope)


class TokenRateThrottle(SettingsScopedRateThrottle):
    """Per API token rather than per user: each of an operator's pipelines has its own budget."""

    def get_cache_key(self, request, view):
        token = getattr(request, "auth", None)
        key = getattr(token, "key", None)
        if key is None:
            return super().get_cache_key(request, view)
        return self.cache_format % {"scope": self.scope, "ident": f"token:{key[:12]}"}
