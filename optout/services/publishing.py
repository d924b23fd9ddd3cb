"""What every write that changes the published registry calls: the audit log and the registry clock."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.db import transaction

from optout import audit
from optout.models import RegistryChange, RegistryClock

# the newest rows kept: a process further behind than this reloads in full, as it would from any gap in the log
CHANGE_LOG_KEPT = 10_000


def audit_append(*, event: str, payload: dict) -> None:
    """Append one event to the hash-chained audit log (also for other apps' rule decisions)."""
    audit.append(event=event, payload=payload)


@transaction.atomic  # outside a transaction too, the log rows are written while the clock row is locked
def registry_touch(
    *, optout_ids: Iterable[int] | None = None, deleted_key: tuple[str, str] | None = None
) -> None:
    """Move the registry clock and log which opt-outs moved it (None: a change not pinned on opt-outs, which
    makes every process reload all the keys it holds; `deleted_key`: (kind, key) of a key row that is gone).

    The version is a random value, not a counter: a rolled-back change followed by another would repeat a
    counter's value while a cache built inside the rolled-back transaction still holds it. The log rows are
    written after the UPDATE has locked the clock row, which stays locked until this transaction ends: so the
    log's ids are drawn, and committed, in the order the changes commit."""
    version = secrets.randbits(62) or 1  # never 0, the value of a clock that has never moved
    if not RegistryClock.objects.filter(pk=1).update(version=version):
        RegistryClock.objects.update_or_create(pk=1, defaults={"version": version})
    kind, key = deleted_key or ("", "")
    owners: list[int | None] = [*sorted(set(optout_ids or ()))] or [None]
    rows = RegistryChange.objects.bulk_create(
        [RegistryChange(version=version, optout_id=owner, kind=kind, key=key) for owner in owners]
    )
    newest = max((row.pk for row in rows if row.pk is not None), default=None)
    if newest is not None:
        RegistryChange.objects.filter(pk__lte=newest - CHANGE_LOG_KEPT).delete()
