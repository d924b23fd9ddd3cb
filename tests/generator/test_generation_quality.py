"""The generation-quality benchmark's measures, on inputs whose answer is known."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import generation_quality as gq  # noqa: E402


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_recall_is_perfect_when_each_image_matches_its_prompt_and_chance_like_when_shuffled():
    rng = np.random.default_rng(0)
    text = _unit(rng.normal(size=(100, 32)))
    matched = gq.following(_unit(text + 0.1 * rng.normal(size=text.shape)), text)
    assert matched["r1"] == 1.0 and matched["r10"] == 1.0 and matched["gap"] > 0.5
    shuffled = gq.following(text[rng.permutation(100)], text)
    assert shuffled["r10"] < 0.3 and abs(shuffled["gap"]) < 0.1


def test_kid_is_near_zero_for_one_distribution_and_large_for_a_shifted_one():
    rng = np.random.default_rng(0)
    real = _unit(rng.normal(size=(300, 16)))
    same = _unit(rng.normal(size=(300, 16)))
    shifted = _unit(rng.normal(size=(300, 16)) + 1.5)
    assert abs(gq.kid(same, real, 100)[0]) < 0.2 * gq.kid(shifted, real, 100)[0]


def test_unrelated_pairs_share_no_keyword():
    prompts = ["red apple", "green apple", "blue car", "old house, tree", "a tree"]
    pairs = gq.unrelated_pairs(prompts, 100)
    assert (0, 1) not in pairs and (3, 4) not in pairs and (0, 2) in pairs
    assert len(pairs) == 8


def test_share_correlation_tells_identical_from_unrelated_share_vectors():
    rng = np.random.default_rng(0)
    shares = rng.dirichlet(np.ones(50), size=4)
    shares[1] = shares[0]
    same, _ = gq.share_correlation(shares, [(0, 1)] * 2)
    other, _ = gq.share_correlation(shares, [(0, 2), (0, 3), (2, 3)])
    assert np.isclose(same, 1.0) and abs(other) < 0.4


def test_the_pixel_baseline_has_the_training_sets_per_pixel_mean():
    rng = np.random.default_rng(0)
    pixels = np.zeros((200, 8, 8, 3), dtype=np.uint8)
    pixels[:, :4] = rng.integers(150, 250, size=(200, 4, 8, 3))
    samples = gq.pixel_baseline(pixels, 400)
    assert samples.shape == (400, 8, 8, 3) and samples.dtype == np.uint8
    assert abs(samples[:, :4].mean() - pixels[:, :4].mean()) < 2 and samples[:, 4:].max() == 0
