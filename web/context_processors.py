"""Template context every page gets."""

from __future__ import annotations

from django.http import HttpRequest

from core.permissions import is_operator


def operator(request: HttpRequest) -> dict[str, bool]:
    """`is_operator`: whether the navigation offers the operators' pages."""
    return {"is_operator": is_operator(request.user)}
