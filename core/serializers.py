"""Serializers shared by every app's API."""

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """The one error shape (core.exceptions.api_exception_handler): every 4xx of the API has this body."""

    message = serializers.CharField(help_text="what went wrong, for a person to read")
    extra = serializers.DictField(
        help_text="details a program can use: `fields` (per-field messages) for a validation error, the limit "
        "for a body that is too large, the conflicting state for a 409"
    )
