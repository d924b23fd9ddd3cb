"""Who is an operator, for every app: a superuser, or a staff account in the operators group.

Staff alone opens the Django admin; the group is what lets an account review opt-outs, build manifests, see
unpublished builds, override a stale generator and read the contributor-share report. One definition, so an
account never is an operator in one app and not in the next.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

OPERATORS_GROUP = "operators"


def is_operator(user: Any) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    return bool(user.is_staff and user.groups.filter(name=OPERATORS_GROUP).exists())


class IsOperator(BasePermission):
    """DRF permission: the request's user is an operator (is_operator)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_operator(request.user)
