"""Accounts and API tokens (django-rest-knox: only a SHA-512 digest is stored; the token is shown once).

Signing up or logging in through the API issues a fresh token that expires after PROVENANT_LOGIN_TOKEN_HOURS;
a pipeline asks for a longer-lived one (PROVENANT_API_TOKEN_DAYS). Owners list, rotate and revoke their tokens
by the public prefix (`token_key`), never by the secret.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, user_logged_in
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from knox.models import AuthToken

from core.exceptions import ApplicationError
from optout import audit

User = get_user_model()


@transaction.atomic
def artist_signup(*, username: str, email: str, password: str):
    if User.objects.filter(username__iexact=username).exists():
        raise ApplicationError("That username is taken.", status_code=409)
    user = User(username=username, email=email)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ApplicationError("The password is too weak.", extra={"password": exc.messages}) from exc
    user.set_password(password)
    user.save()
    return user


def artist_login(*, request: HttpRequest, username: str, password: str):
    """The user, or 401. django-axes counts the failures per username and locks it out past the limit (the
    lockout answer itself comes from its middleware, core.lockout)."""
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        raise ApplicationError("Wrong username or password.", status_code=401)
    # a token login is a login: last_login moves, and axes clears the failures counted so far
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    return user


def tokens_of(user) -> QuerySet[AuthToken]:
    """The user's live tokens, newest first."""
    live = Q(expiry__isnull=True) | Q(expiry__gt=timezone.now())
    return AuthToken.objects.filter(live, user=user).order_by("-created")


@transaction.atomic
def token_create(*, user, lifetime: timedelta | None, via: str) -> tuple[AuthToken, str]:
    """(token row, the token itself: shown to the caller once, never stored)."""
    AuthToken.objects.filter(user=user, expiry__lte=timezone.now()).delete()
    if AuthToken.objects.filter(user=user).count() >= settings.PROVENANT_MAX_TOKENS_PER_USER:
        raise ApplicationError(
            f"You have {settings.PROVENANT_MAX_TOKENS_PER_USER} live API tokens; revoke one first.",
            status_code=409,
        )
    row, token = AuthToken.objects.create(user=user, expiry=lifetime)
    audit.append(
        event="token.created",
        payload={"user_id": user.pk, "token_key": row.token_key, "via": via,
                 "expiry": row.expiry.isoformat() if row.expiry else None},
    )  # fmt: skip
    return row, token


def login_token_lifetime() -> timedelta:
    return timedelta(hours=settings.PROVENANT_LOGIN_TOKEN_HOURS)


def api_token_lifetime(days: int | None = None) -> timedelta | None:
    days = settings.PROVENANT_API_TOKEN_DAYS if days is None else days
    return timedelta(days=days) if days else None


@transaction.atomic
def token_revoke(*, user, token_key: str) -> int:
    """Revoke the owner's token(s) with this public prefix; 404 when the user has none."""
    deleted, _ = AuthToken.objects.filter(user=user, token_key=token_key).delete()
    if not deleted:
        raise ApplicationError("No such token.", status_code=404)
    audit.append(event="token.revoked", payload={"user_id": user.pk, "token_key": token_key})
    return deleted


@transaction.atomic
def token_rotate(*, user, current: AuthToken | None) -> tuple[AuthToken, str]:
    """A new token with the current one's lifetime; the current one stops working at once."""
    if current is None:
        raise ApplicationError("Rotate the token you authenticate with (Authorization: Token ...).")
    lifetime = current.expiry - current.created if current.expiry else None
    AuthToken.objects.filter(user=user, digest=current.digest).delete()
    audit.append(event="token.revoked", payload={"user_id": user.pk, "token_key": current.token_key})
    return token_create(user=user, lifetime=lifetime, via="rotate")
