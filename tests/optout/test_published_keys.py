"""The keys a process holds for the check follow the registry from its change log: each change re-reads only its
opt-outs' keys, and whatever the log cannot vouch for (a rolled-back change, a gap, a change not pinned on opt-outs)
reloads everything. Every path must answer as a full reload would."""

import numpy as np
import pytest
from django.db import transaction

from optout import services
from optout.models import OptOutKey
from optout.published_keys import ActivePhashes, published_keys
from provenance.hashing import unsigned_to_int64
from tests.optout.factories import DomainClaimFactory
from tests.provenance.factories import AssetFactory


def _denied_by(work) -> dict[str, int | None]:
    """What the held keys answer for the work's sha256, URL and pHash: the opt-out id, or None."""
    from optout.checking import match, parse_items

    items = [{"sha256": work.sha256}, {"url": work.url}, {"phash": work.phash}]
    found = match(parse_items(items))
    return {
        kind: (hit[0] if hit else None) for kind, hit in zip(("sha256", "url", "phash"), found, strict=True)
    }


def _opt_out(artist, operator, work):
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
    return services.optout_approve(optout=optout, operator=operator)


@pytest.fixture
def loaded(artist, operator):
    """One active opt-out, and the keys this process holds after a check."""
    first = AssetFactory(url="https://art.example.org/first.png")
    optout = _opt_out(artist, operator, first)
    held = published_keys()
    assert held.change_id > 0
    return first, optout, held


def test_an_approval_is_applied_from_the_log_without_rebuilding_the_index(loaded, artist, operator):
    first, _optout, held = loaded
    second = AssetFactory(url="https://art.example.org/second.png")
    optout = _opt_out(artist, operator, second)
    now = published_keys()
    assert now.phashes.index is held.phashes.index and now.change_id > held.change_id
    assert _denied_by(second) == {"sha256": optout.pk, "url": optout.pk, "phash": optout.pk}
    assert set(_denied_by(first).values()) != {None}


def test_a_revocation_is_applied_from_the_log(loaded, artist):
    first, optout, _held = loaded
    services.optout_revoke(optout=optout, artist=artist)
    assert _denied_by(first) == {"sha256": None, "url": None, "phash": None}


def test_a_key_two_optouts_hold_falls_to_the_other_when_the_lower_one_is_revoked(
    loaded, other_artist, operator
):
    first, lower, _held = loaded
    higher = _opt_out(other_artist, operator, first)
    assert _denied_by(first) == {"sha256": lower.pk, "url": lower.pk, "phash": lower.pk}
    services.optout_revoke(optout=lower, artist=lower.artist)
    assert _denied_by(first) == {"sha256": higher.pk, "url": higher.pk, "phash": higher.pk}


def test_a_deleted_key_stops_matching(loaded):
    first, _optout, held = loaded
    OptOutKey.objects.get(kind="sha256", key=first.sha256).delete()
    assert _denied_by(first)["sha256"] is None and _denied_by(first)["url"] is not None
    assert published_keys().phashes.index is held.phashes.index


def test_keys_seen_inside_a_rolled_back_change_are_not_kept(loaded, artist, operator):
    second = AssetFactory(url="https://art.example.org/second.png")
    with pytest.raises(RuntimeError), transaction.atomic():
        _opt_out(artist, operator, second)
        assert _denied_by(second)["sha256"] is not None  # read inside the change: what it would publish
        raise RuntimeError("the change rolls back")
    _opt_out(artist, operator, AssetFactory(url="https://art.example.org/third.png"))  # the log moves on
    assert _denied_by(second) == {"sha256": None, "url": None, "phash": None}


def test_a_change_not_pinned_on_optouts_reloads_everything(loaded, artist):
    _first, _optout, held = loaded
    DomainClaimFactory(artist=artist, domain="art.example.org").delete()
    assert published_keys().phashes.index is not held.phashes.index


def test_a_process_further_behind_than_the_log_keeps_reloads_everything(
    loaded, artist, operator, monkeypatch
):
    from optout.services import publishing

    _first, _optout, held = loaded
    monkeypatch.setattr(publishing, "CHANGE_LOG_KEPT", 1)
    for n in range(2):
        _opt_out(artist, operator, AssetFactory(url=f"https://art.example.org/{n}.png"))
    assert published_keys().phashes.index is not held.phashes.index


def _full_answers(hashes, owners, radius, queries):
    return ActivePhashes.build(hashes, owners, radius).match(queries)


@pytest.mark.parametrize("radius", [4, 6])
def test_retired_and_added_phashes_answer_as_a_fresh_index_would(radius):
    rng = np.random.default_rng(3)
    hashes = rng.integers(-(2**63), 2**63 - 1, 3000, dtype=np.int64)
    owners = rng.integers(1, 400, 3000).astype(np.int64)
    near = hashes[rng.integers(0, 3000, 2000)] ^ (np.int64(1) << rng.integers(0, 63, 2000)).astype(np.int64)
    queries = np.concatenate([near, hashes[:500], rng.integers(-(2**63), 2**63 - 1, 500, dtype=np.int64)])
    held = ActivePhashes.build(hashes, owners, radius)
    for round_ in range(40):  # enough changes to pass the brute-force limit and rebuild on the way
        changed = rng.choice(np.arange(1, 400), 5, replace=False)
        kept = ~np.isin(owners, changed)
        new = rng.integers(-(2**63), 2**63 - 1, 8, dtype=np.int64)
        new[:4] = hashes[rng.integers(0, len(hashes), 4)]  # some exactly equal to others' hashes: ties by id
        new_owners = rng.choice(changed, 8).astype(np.int64)
        hashes, owners = np.concatenate([hashes[kept], new]), np.concatenate([owners[kept], new_owners])
        held = held.replaced(changed.astype(np.int64), new, new_owners)
        got, want = held.match(queries), _full_answers(hashes, owners, radius, queries)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), round_


def test_a_phash_held_by_two_answers_with_the_lower_optout_id():
    value = unsigned_to_int64(0xF0F0F0F0F0F0F0F0)
    held = ActivePhashes.build(np.array([value], dtype=np.int64), np.array([9], dtype=np.int64), 4)
    held = held.replaced(np.array([3], dtype=np.int64), np.array([value], dtype=np.int64), np.array([3]))
    assert held.match(np.array([value], dtype=np.int64))[0].tolist() == [3]
