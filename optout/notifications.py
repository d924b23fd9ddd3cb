"""E-mail to the artist on each state change of their opt-out (called after commit)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail

from optout.models import OptOut, OptOutStateChange

logger = logging.getLogger(__name__)

_WHAT = {
    "pending": "is waiting for verification",
    "active": "is active: these works are out of search and of every training manifest built from now on",
    "rejected": "was rejected",
    "revoked": "was revoked: you have opted these works back in",
}


def send_state_change(*, optout_id: int, change_id: int) -> None:
    optout = OptOut.objects.select_related("artist").filter(pk=optout_id).first()
    change = OptOutStateChange.objects.filter(pk=change_id).first()
    if optout is None or change is None or not optout.artist.email:
        return
    subject = f"Your opt-out #{optout.pk} {_WHAT.get(change.to_status, change.to_status)}"[:150]
    body = (
        f"Opt-out #{optout.pk} ({optout.get_scope_display()}, {optout.items.count()} works)\n"
        f"State: {change.from_status or 'new'} -> {change.to_status} at {change.at:%Y-%m-%d %H:%M:%S} UTC\n"
        f"Note: {change.note}\n"
    )
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [optout.artist.email])
    except OSError:
        # the state change stands either way; a mail server outage must not undo an opt-out
        logger.exception("could not send the state-change e-mail for opt-out %s", optout.pk)
