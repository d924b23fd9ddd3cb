"""What every write that changes the published registry calls: the audit log and the registry clock."""

from __future__ import annotations

import secrets

from optout import audit
from optout.models import RegistryClock


def audit_append(*, event: str, payload: dict) -> None:
    """Append one event to the hash-chained audit log (also for other apps' rule decisions)."""
    audit.append(event=event, payload=payload)


def registry_touch() -> None:
    """Move the registry clock: every in-process cache of the published keys reloads on its next read. A random
    value, not a counter: a rolled-back change followed by another would repeat a counter's value while a cache
    built inside the rolled-back transaction still holds it."""
    version = secrets.randbits(62)
    if not RegistryClock.objects.filter(pk=1).update(version=version):
        RegistryClock.objects.update_or_create(pk=1, defaults={"version": version})
