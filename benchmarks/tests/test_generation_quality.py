"""The generation-quality benchmark's measures, on inputs whose answer is known."""

from types import SimpleNamespace

import generation_quality as gq
import numpy as np


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


def test_measures_table_and_grid_come_out_of_a_recipes_draws(settings, tmp_path, capsys):
    """The measuring half of the benchmark on made-up draws, with the deterministic stand-in encoder."""
    from PIL import Image

    from embeddings.encoders.factory import get_encoder

    settings.CLIP_MODEL = "fake"
    get_encoder.cache_clear()
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(12, 8, 8, 3), dtype=np.uint8)
    args = SimpleNamespace(prompts=6, kid_subset=4)
    prompts = {
        "val": [f"val prompt {i}" for i in range(6)],
        "test": ["red cat", "blue car", "green tree", "yellow sun", "old house", "small fish"],
    }
    ref = gq.references(
        prompts, {"val": pixels[:6], "test": pixels[6:]}, SimpleNamespace(share_prompts=6, pairs=5)
    )
    made = {
        "val": pixels[:6],
        "test": pixels[6:],  # the real works themselves: the best a generator could do
        "sample_s": np.array(0.5),
        "shares": rng.dirichlet(np.ones(9), size=6),
        "subjects": np.array([[0.2, 0.5], [0.4, 0.4]]),
    }
    m = gq.measures(made, ref, args)
    # the stand-in encoder's text and image vectors share a space only nominally: recall is just a fraction here
    assert 0 <= m["validation"]["r10"] <= 1 and np.isclose(m["subject_lift"], (2.5 + 1.0) / 2)
    assert m["kid"][0] < 0.05 and np.isfinite(m["share_rho"][0]) and len(ref["pairs"]) == 5
    report = {
        "prompts": 6,
        "kid_n": 6,
        "ceiling": gq.following(ref["test_real"], ref["test_text"]),
        "kid_real_halves": (0.0, 0.0),
        "kid_pixel_baseline": (0.1, 0.01),
        "product_conditioning": "image",
        "recipes": {
            "image": {"product": True, "by_guidance": {3.0: m}, "chosen_on_validation": 3.0, "default": 3.0},
            "sentence": {
                "product": False,
                "by_guidance": {3.0: m},
                "chosen_on_validation": 3.0,
                "default": 3.0,
            },
        },
        "timings": {},
        "load_before": "1.0/1.0/1.0",
        "load_after": "1.0/1.0/1.0",
    }
    gq.print_table(report)
    table = capsys.readouterr().out
    # only the product's recipe is marked as the default
    assert "image recipe, guidance 3.0 *" in table and "sentence recipe, guidance 3.0 *" not in table
    grid = [[pixels[0]] * 4 for _ in gq.GRID_PROMPTS]
    gq.save_grid({"current": grid, "new": grid}, tmp_path / "grid.png")
    assert Image.open(tmp_path / "grid.png").size[1] == 22 + len(gq.GRID_PROMPTS) * (8 * 3 + 4)
    get_encoder.cache_clear()


def test_test_prompts_come_from_works_both_models_never_saw_and_validation_prompts_from_the_rest():
    captions = [f"caption {i}" for i in range(12)] + ["caption 0", ""]
    held = [(f"work{i}", SimpleNamespace(caption=c)) for i, c in enumerate(captions)]
    held_data = {"kept": np.arange(len(held))}
    tower = {f"work{i}" for i in range(0, 12, 2)} | {"work12"}  # work12 repeats work0's caption
    args = SimpleNamespace(draw=0, prompts=4, validation=5, kid=20)
    val, pool = gq.pick_prompts(held_data, held, tower, args)
    test = pool[: args.prompts]
    assert all(held[j][0] in tower for j in test)
    assert len(val) == 5 and not set(val) & set(pool)
    chosen = [held[j][1].caption for j in val + pool]
    assert len(chosen) == len(set(chosen)) == 12  # each caption once; the empty one never
