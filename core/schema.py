"""The OpenAPI schema's error responses, derived from what each view can answer rather than written per view.

Every 4xx comes from one exception handler (core.exceptions) or the body-limit middleware, in one shape
(core.serializers.ErrorSerializer), so which codes an operation can give follows from the view: its
authenticators (401), permissions (403), path and page parameters (404), query or body input (400, 413, 415)
and throttle scope (429). A view documents its own domain codes (409, 422, ...) with `extend_schema`; those are
kept as written.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions
from rest_framework.authentication import SessionAuthentication

from core.serializers import ErrorSerializer

BODY_METHODS = {"POST", "PUT", "PATCH"}
_OPEN = (permissions.AllowAny,)
_OPEN_FOR_READING = (permissions.AllowAny, permissions.IsAuthenticatedOrReadOnly)


class ProvenantAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses = operation["responses"]
        for code, why in self._error_codes(operation).items():
            if code not in responses:
                error = OpenApiResponse(ErrorSerializer, description=why)
                responses[code] = self._get_response_for_code(error, code)
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_codes(self, operation: dict[str, Any]) -> dict[str, str]:
        where = {p["in"] for p in operation.get("parameters", [])}
        has_body = self.method in BODY_METHODS
        codes = {}
        if has_body or "query" in where or "header" in where:
            codes["400"] = "invalid input: `extra.fields` names each field and what is wrong with it"
        if self.view.get_authenticators():
            codes["401"] = "the credentials sent are missing, invalid or expired"
        if not self._open_to_anyone() or (has_body and self._session_authenticated()):
            codes["403"] = (
                "this account may not do this (an operator-only action), or a session request without its CSRF token"
            )
        if "path" in where or "page" in {p["name"] for p in operation.get("parameters", [])}:
            codes["404"] = "no such object (or not visible to this account), or no such page"
        if has_body:
            codes["413"] = "the request body is over this endpoint's size limit; it was not read"
            codes["415"] = "the request body's content type is not one this endpoint reads"
        if self._throttled():
            codes["429"] = "too many requests: retry after the number of seconds in the Retry-After header"
        return codes

    def _open_to_anyone(self) -> bool:
        allowed = _OPEN_FOR_READING if self.method in permissions.SAFE_METHODS else _OPEN
        return all(isinstance(p, allowed) for p in self.view.get_permissions())

    def _session_authenticated(self) -> bool:
        return any(isinstance(a, SessionAuthentication) for a in self.view.get_authenticators())

    def _throttled(self) -> bool:
        scope = getattr(self.view, "throttle_scope", None)
        methods = getattr(self.view, "throttle_methods", None)
        rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})
        return bool(scope and rates.get(scope) and (methods is None or self.method in methods))
