"""Deletes leave a trace: any row that decides who owns or hides what, removed by whatever path (admin, shell,
a cascade), appends an audit entry and moves the registry clock, so no process keeps answering from a cache of
what is gone. The admin and the foreign keys refuse most such deletes (PROTECT); this catches the rest."""

from __future__ import annotations

from django.db.models.signals import post_delete

from optout.models import (
    ContributorClaim,
    DomainClaim,
    OptOut,
    OptOutItem,
    OptOutKey,
    OptOutStateChange,
    SignerBinding,
)

WATCHED = (ContributorClaim, DomainClaim, OptOut, OptOutItem, OptOutKey, OptOutStateChange, SignerBinding)


def record_delete(sender, instance, **kwargs) -> None:
    from optout import services

    services.registry_touch()
    services.audit_append(
        event="deleted",
        payload={"model": sender._meta.label, "id": instance.pk, "row": str(instance)[:500]},
    )


def connect() -> None:
    for model in WATCHED:
        post_delete.connect(record_delete, sender=model, dispatch_uid=f"optout-delete-{model._meta.label}")
