"""The hook through which higher layers (opt-out) hide works from search, thumbnails and the asset API without
the lower apps (provenance, embeddings) importing them.

A provider is `fn(user) -> (hidden_ids, flagged_ids)`: hidden ids never appear in results (FAISS id selector and
SQL exclude); flagged ids stay, marked `opted_out`, because they are the requesting owner's own opted-out works
and the owner should see that they are still in the collection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ExclusionProvider = Callable[[Any], tuple[set[int], set[int]]]

_providers: list[ExclusionProvider] = []


def register_exclusion_provider(provider: ExclusionProvider) -> None:
    """Register once (e.g. in an AppConfig.ready()); registering the same function again is a no-op."""
    if provider not in _providers:
        _providers.append(provider)


def unregister_exclusion_provider(provider: ExclusionProvider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def collect_exclusions(user: Any = None) -> tuple[frozenset[int], frozenset[int]]:
    """(hidden, flagged) ids from every provider; an id hidden by one provider stays hidden."""
    hidden: set[int] = set()
    flagged: set[int] = set()
    for provider in _providers:
        provider_hidden, provider_flagged = provider(user)
        hidden |= set(provider_hidden)
        flagged |= set(provider_flagged)
    return frozenset(hidden), frozenset(flagged - hidden)
