"""The opt-out state machine: ALLOWED_TRANSITIONS, and `optout_transition`, the one function every state change
goes through (an operator's decision, an artist's revocation, an activation a verified claim allows).

A transition locks the opt-out's row (SELECT ... FOR UPDATE) and moves only from a state ALLOWED_TRANSITIONS lists,
so a replayed or concurrent change finds the new state and does nothing. Activation passes the ownership gate
(optout.gate) in the same transaction. Each transition writes its history row, flips the opt-out's keys' `active`
flag, moves the registry clock and appends to the audit log in that transaction; e-mails and the
activated/revoked signals go out only after commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.exceptions import ApplicationError
from optout import audit, gate, notifications, selectors
from optout import signals as optout_signals
from optout.models import OptOut, OptOutItem, OptOutKey, OptOutStateChange
from optout.services.publishing import registry_touch

Status = OptOut.Status
Scope = OptOut.Scope


def optout_gate_reapply(*, artist_id: int, asset_ids: Iterable[int], hosts: Iterable[str] = ()) -> None:
    """A claim was just verified: other artists' active opt-outs stop publishing keys over what it owns."""
    audit.hold_chain()  # the lock order every registry writer keeps (optout.audit.hold_chain)
    narrowed = []
    for optout_id in gate.optouts_touching(asset_ids=asset_ids, hosts=hosts, artist_id=artist_id):
        optout = OptOut.objects.select_for_update().get(pk=optout_id)
        if optout.status != Status.ACTIVE:
            continue
        coverage, changed = gate.gate_apply(optout=optout, now=timezone.now())
        if changed:
            audit.append(
                event="optout.narrowed",
                payload={"optout_id": optout.pk, "artist_id": optout.artist_id, "owner_id": artist_id,
                         **coverage.summary()},
            )  # fmt: skip
            narrowed.append(optout.pk)
    if narrowed:
        registry_touch(optout_ids=narrowed)  # once, after every row it covers is locked


def optout_history_write(*, optout: OptOut, from_status: str, to: str, actor, note: str) -> OptOutStateChange:
    return OptOutStateChange.objects.create(
        optout=optout, from_status=from_status, to_status=to, at=timezone.now(), actor=actor, note=note[:1000]
    )


ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    Status.ACTIVE: {Status.PENDING},
    Status.REJECTED: {Status.PENDING},
    Status.REVOKED: {Status.PENDING, Status.ACTIVE},
}


def _gate_at_activation(current: OptOut, note: str) -> tuple[str, str, dict]:
    """(state to move to, note, what the gate left out): activation publishes only what the artist may; an
    opt-out left with nothing to publish because others own all of it is rejected instead."""
    coverage, _changed = gate.gate_apply(optout=current, now=timezone.now())
    summary = coverage.summary()
    if not (coverage.skipped or coverage.colliding_keys or coverage.blocked_hosts):
        return Status.ACTIVE, note, {}
    if not gate.publishes_anything(current):
        return Status.REJECTED, "everything it covers is owned by other verified artists", summary
    left_out = (
        f"{len(coverage.skipped)} works and {len(coverage.blocked_hosts)} hosts of other verified artists"
    )
    return Status.ACTIVE, f"{note}; left out: {left_out}", summary


@transaction.atomic
def optout_transition(*, optout: OptOut, to: str, actor, note: str) -> bool:
    """Move an opt-out to `to` if its current state allows; False (and nothing written) otherwise. Activation
    passes the ownership gate first, in this transaction, with the opt-out row locked."""
    sources = ALLOWED_TRANSITIONS[to]
    audit.hold_chain()  # the lock order every registry writer keeps (optout.audit.hold_chain)
    current = OptOut.objects.select_for_update().get(pk=optout.pk)
    if current.status not in sources:
        optout.status = current.status
        return False
    from_status, left_out = current.status, dict[str, Any]()
    if to == Status.ACTIVE:
        to, note, left_out = _gate_at_activation(current, note)
    OptOut.objects.filter(pk=optout.pk).update(status=to, updated_at=timezone.now())
    optout.status = to
    keys = OptOutKey.objects.filter(optout=optout)
    (keys.filter(withdrawn_at=None) if to == Status.ACTIVE else keys).update(active=(to == Status.ACTIVE))
    registry_touch(optout_ids=[optout.pk])
    change = optout_history_write(optout=optout, from_status=from_status, to=to, actor=actor, note=note)
    asset_ids = list(
        OptOutItem.objects.filter(optout=optout, excluded_at=None).values_list("asset_id", flat=True)
    )
    audit.append(
        event="optout.state",
        payload={"optout_id": optout.pk, "artist_id": optout.artist_id, "scope": optout.scope,
                 "from": from_status, "to": to, "actor_id": getattr(actor, "pk", None), "note": note,
                 "asset_count": len(asset_ids), "domain": optout.domain, "at": change.at.isoformat(),
                 **({"left_out": left_out} if left_out else {})},
    )  # fmt: skip
    optout_id = optout.pk
    transaction.on_commit(lambda: notifications.send_state_change(optout_id=optout_id, change_id=change.pk))
    if to == Status.ACTIVE or from_status == Status.ACTIVE:
        signal = optout_signals.optout_activated if to == Status.ACTIVE else optout_signals.optout_revoked
        transaction.on_commit(lambda: signal.send(sender=OptOut, asset_ids=asset_ids, optout_id=optout_id))
    return True


def _refuse_decision(optout: OptOut, verb: str) -> ApplicationError:
    return ApplicationError(
        f"This opt-out is {optout.status}; only a pending one can be {verb}.",
        extra={"status": optout.status},
        status_code=409,
    )


def optout_approve(*, optout: OptOut, operator, note: str = "") -> OptOut:
    """An operator activates a pending request. Chosen works another artist now owns refuse the approval (the
    operator should see that); the other scopes are narrowed by the gate. Approving again is a no-op."""
    with transaction.atomic():
        if optout.scope == Scope.WORKS:
            ids = optout.items.filter(excluded_at=None).values_list("asset_id", flat=True)
            if selectors.owned_by_others(optout.artist, ids):
                raise ApplicationError(
                    "Some works are now owned by another verified artist.", status_code=409
                )
        moved = optout_transition(
            optout=optout, to=Status.ACTIVE, actor=operator, note=note or "approved by an operator"
        )
    if not moved and optout.status != Status.ACTIVE:
        raise _refuse_decision(optout, "approved")
    return optout


def optout_reject(*, optout: OptOut, operator, note: str = "") -> OptOut:
    moved = optout_transition(
        optout=optout, to=Status.REJECTED, actor=operator, note=note or "rejected by an operator"
    )
    if not moved and optout.status != Status.REJECTED:
        raise _refuse_decision(optout, "rejected")
    return optout


def optout_revoke(*, optout: OptOut, artist) -> OptOut:
    """The artist opts back in (or withdraws a pending request). Revoking twice changes nothing."""
    optout_transition(optout=optout, to=Status.REVOKED, actor=artist, note="revoked by the artist")
    return optout
