"""The copy-detection benchmark's scoring: a hit in the true work's near-copy cluster counts, the cascade's own-work
recall is kept beside it, and the table names its baseline for what it is."""

from argparse import Namespace

from copy_detection import METHODS, _count, _merge, _report


def test_a_hit_counts_at_one_only_when_it_ranks_first_and_at_ten_anywhere_in_the_top_ten():
    counter = [0, 0]
    _count(counter, [7, 3, 5], {3})
    assert counter == [0, 1]
    _count(counter, [3, 7], {3, 9})
    assert counter == [1, 2]
    _count(counter, list(range(100, 110)) + [3], {3})  # eleventh: a miss
    assert counter == [1, 2]
    _count(counter, [], {3})
    assert counter == [1, 2]


def test_a_cluster_member_is_correct_for_the_cluster_score_and_not_for_the_own_work_score():
    own, cluster = {1}, {1, 2}
    counts = {m: [0, 0] for m in METHODS}
    _count(counts["cascade"], [2, 1], cluster)
    _count(counts["own work"], [2, 1], own)
    assert counts["cascade"] == [1, 1]
    assert counts["own work"] == [0, 1]


def _run(tmp_path, name: str, counts: dict, works: int) -> str:
    out = tmp_path / f"{name}.json"
    args = Namespace(out=str(out), pool="all", seed=5)
    seconds = {family: [0.1] * works for family in counts}
    small = {family: [0, 0] for family in counts}
    _report(counts, small, seconds, works, args, "space", 1.0, partial=False)
    return str(out)


def test_the_table_names_the_baseline_and_parts_add_up(tmp_path, capsys):
    first = _run(tmp_path, "a", {"crop": {m: [1, 2] for m in METHODS}}, works=2)
    second = _run(tmp_path, "b", {"crop": {m: [0, 1] for m in METHODS}}, works=2)
    capsys.readouterr()
    _merge(Namespace(merge=[first, second], out=str(tmp_path / "merged.json")))
    table = capsys.readouterr().out
    assert "embedding only, same model R@10" in table and "CLIP" not in table
    assert "| crop | 0.250 | 0.750 | 0.250 | 0.750 |" in table  # (1 + 0) / 4 and (2 + 1) / 4
    assert "4 works x 1 families" in table


def test_a_resumed_run_goes_on_from_the_saved_counts_and_refuses_another_runs(tmp_path):
    from collections import defaultdict

    import pytest
    from copy_detection import _resumed

    counts = {"crop": {m: [3, 4] for m in METHODS}}
    args = Namespace(out=str(tmp_path / "run.json"), pool="all", seed=5, part="1/2")
    _report(counts, {"crop": [0, 0]}, {"crop": [0.2] * 4}, 4, args, "space", 9.0, partial=True)
    fresh = {"crop": {m: [0, 0] for m in METHODS}}
    small, seconds = {"crop": [0, 0]}, defaultdict(list)
    assert _resumed(args, ["crop"], fresh, small, seconds) == (4, 9.0)
    assert fresh == counts and seconds["crop"] == [0.2] * 4
    with pytest.raises(SystemExit, match="another run"):
        _resumed(Namespace(**{**vars(args), "seed": 6}), ["crop"], fresh, small, seconds)
    _report(counts, {"crop": [0, 0]}, {"crop": [0.2] * 4}, 4, args, "space", 9.0, partial=False)
    with pytest.raises(SystemExit, match="finished"):
        _resumed(args, ["crop"], fresh, small, seconds)
