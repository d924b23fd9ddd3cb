"""Page forms. Validation of pixels stays in provenance.imaging (via the search service); these check shape only."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model

from optout.models import OptOut


class SearchForm(forms.Form):
    KINDS = [
        ("text", "What the picture shows"),
        ("contributor", "Contributor name"),
        ("domain", "Website or URL"),
    ]
    image = forms.FileField(
        required=False,
        label="Picture to look for",
        help_text="PNG, JPEG, WebP, GIF, TIFF, BMP, AVIF or SVG.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/*"}),
    )
    q = forms.CharField(required=False, max_length=500, label="Or search by words")
    kind = forms.ChoiceField(choices=KINDS, required=False, initial="text", label="Search in")

    def clean_image(self):
        upload = self.cleaned_data.get("image")
        limit = settings.PROVENANT_MAX_UPLOAD_BYTES
        if upload and upload.size > limit:
            raise forms.ValidationError(
                f"This file is {upload.size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB. "
                "Please upload a smaller copy.",
                code="too_large",
            )
        return upload

    def clean(self):
        data = super().clean() or {}
        if not data.get("image") and not (data.get("q") or "").strip() and not self.errors:
            raise forms.ValidationError("Choose a picture to upload or type something to search for.")
        return data


class SignupForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username")
    email = forms.EmailField(
        label="E-mail address", help_text="We write to you when a request changes state."
    )
    password1 = forms.CharField(
        label="Password", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="Password again", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("That username is taken.")
        return username

    def clean(self):
        data = super().clean() or {}
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data


class OptOutConfirmForm(forms.Form):
    SCOPES = [
        (OptOut.Scope.WORKS, "Only this work"),
        (OptOut.Scope.NEAR_COPIES, "This work and its near-copies"),
    ]
    asset = forms.IntegerField(widget=forms.HiddenInput)
    scope = forms.ChoiceField(choices=SCOPES, widget=forms.HiddenInput)
    reason = forms.CharField(
        required=False,
        max_length=1000,
        label="Note for the reviewer (optional)",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    confirm = forms.BooleanField(
        label="I made this work (or hold its rights) and want it left out of training data.",
    )


class ReportForm(forms.Form):
    METHODS = [("gradient", "Influence (gradient attribution)"), ("similarity", "Similarity")]
    method = forms.ChoiceField(choices=METHODS, initial="gradient", label="Share method")
    start = forms.DateField(required=False, label="From (YYYY-MM-DD)")
    end = forms.DateField(required=False, label="Until (YYYY-MM-DD, exclusive)")
    pool = forms.DecimalField(min_value=0, max_digits=14, decimal_places=2, initial=1000, label="Payout pool")


class GenerateForm(forms.Form):
    prompt = forms.CharField(
        max_length=500, label="Prompt", widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    seed = forms.IntegerField(required=False, min_value=0, max_value=2**31, label="Seed (optional)")
