"""Artists' accounts: sign-up (through the opt-out accounts service), login, logout. Sign-up and login are
throttled per address as their API twins are; django-axes locks a username out after repeated failures."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import LoginView, LogoutView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme

from core.exceptions import ApplicationError
from core.throttles import throttle
from web.forms import SignupForm


@throttle("signup")
def signup(request: HttpRequest) -> HttpResponse:
    from optout.accounts import artist_signup

    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = artist_signup(username=data["username"], email=data["email"], password=data["password1"])
        except ApplicationError as exc:
            for problem in exc.extra.get("password", []):
                form.add_error("password1", problem)
            if not exc.extra.get("password"):
                form.add_error(None, exc.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome, {user.username}. You can now opt your works out.")
            return redirect(_safe_next(request) or "web:home")
    return render(request, "web/signup.html", {"form": form, "next": _safe_next(request)})


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return ""


@method_decorator(throttle("login"), name="dispatch")
class ArtistLoginView(LoginView):
    template_name = "web/login.html"
    redirect_authenticated_user = True
    next_page = "web:home"  # a URL name: LoginView resolves it


class ArtistLogoutView(LogoutView):
    """POST only (Django's LogoutView refuses GET), so a link on another site cannot sign anyone out."""

    next_page = "web:home"  # a URL name: LogoutView resolves it
