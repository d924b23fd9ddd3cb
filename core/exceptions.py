"""One application error type, mapped to a clear JSON 4xx by one DRF exception handler."""

from typing import Any

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
    ValidationError,
)
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A request the user can fix: bad input, a conflict, a missing permission."""

    status_code = 400

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        if status_code is not None:
            self.status_code = status_code


class PayloadTooLarge(ApplicationError):
    """A body or an upload past its size limit."""

    status_code = 413


class ImageUnreadable(ApplicationError):
    """Uploaded bytes that are not a picture we open; `too_large_to_open` when the pixel-count guard refused a
    picture that may be real (a person should send a smaller copy rather than another file)."""

    def __init__(self, reason: str, *, too_large_to_open: bool = False):
        super().__init__(f"image rejected: {reason}")
        self.reason = reason
        self.too_large_to_open = too_large_to_open


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "extra": exc.extra}, status=exc.status_code)
    if isinstance(exc, SuspiciousOperation):
        return _unreadable_body(exc)
    if isinstance(exc, ValidationError):
        exc = drf_exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"message": str(response.data["detail"]), "extra": {}}
    elif not isinstance(response.data, dict) or "message" not in response.data:
        response.data = {"message": "Validation error", "extra": {"fields": response.data}}
    return response


def _unreadable_body(exc: SuspiciousOperation) -> Response:
    """A body Django refuses to parse (past its field, file or size limits): the client's mistake, in the API's
    error shape, rather than Django's HTML 400 page."""
    if isinstance(exc, RequestDataTooBig):
        message, code = "The request body is too large.", 413
    elif isinstance(exc, TooManyFieldsSent):
        message, code = f"Too many form fields (at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}).", 400
    elif isinstance(exc, TooManyFilesSent):
        message, code = f"Too many files (at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES}).", 400
    else:
        message, code = "The request could not be read.", 400
    return Response({"message": message, "extra": {}}, status=code)
