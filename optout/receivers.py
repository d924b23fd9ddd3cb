"""Deletes leave a trace: any row that decides who owns or hides what, removed by whatever path (admin, shell,
a cascade), appends an audit entry and moves the registry clock, so no process keeps answering from a cache of
what is gone. The admin and the foreign keys refuse most such deletes (PROTECT); this catches the rest."""

from __future__ import annotations

from django.db.models.signals import post_delete, pre_delete

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


def hold_chain_before_delete(sender, instance, **kwargs) -> None:
    """The chain head's lock before the DELETE locks the row: the order every registry writer keeps."""
    from optout import audit

    audit.hold_chain()


def record_delete(sender, instance, **kwargs) -> None:
    from optout import services

    services.audit_append(
        event="deleted",
        payload={"model": sender._meta.label, "id": instance.pk, "row": str(instance)[:500]},
    )
    if sender is OptOutKey:
        services.registry_touch(optout_ids=[instance.optout_id], deleted_key=(instance.kind, instance.key))
    elif sender is OptOut:
        services.registry_touch(optout_ids=[instance.pk])
    elif sender in (OptOutItem, OptOutStateChange):
        services.registry_touch(optout_ids=[instance.optout_id])
    else:
        services.registry_touch()  # a claim or a signer binding: not pinned on opt-outs, every cache reloads


def connect() -> None:
    for model in WATCHED:
        pre_delete.connect(
            hold_chain_before_delete, sender=model, dispatch_uid=f"optout-hold-{model._meta.label}"
        )
        post_delete.connect(record_delete, sender=model, dispatch_uid=f"optout-delete-{model._meta.label}")
