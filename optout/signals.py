"""Signals higher layers listen to (the generator marks models stale). Sent after the transaction commits,
with `asset_ids: list[int]` and `optout_id: int`."""

import django.dispatch

optout_activated = django.dispatch.Signal()
optout_revoked = django.dispatch.Signal()
