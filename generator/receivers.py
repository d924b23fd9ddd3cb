"""Opt-out sends `optout_activated` (after its transaction commits); we mark affected models stale."""

from __future__ import annotations


def on_optout_activated(
    sender, asset_ids: list[int] | None = None, optout_id: int | None = None, **kwargs
) -> None:
    from generator.services import generator_models_mark_stale

    if asset_ids:
        generator_models_mark_stale(asset_ids=list(asset_ids), optout_id=optout_id)
