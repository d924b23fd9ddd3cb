"""The LDS benchmark's own measures: the score, the validation/test split and the choice made on it, the bootstrap
that resamples subset masks with images, the datamodel ceiling, and the held-out draw of contributors."""

import numpy as np
import pytest
from attribution_lds import (
    LAMBDAS_REL,
    SIMILARITY_TOP_KS,
    bootstrap_mean_lds,
    choose_on_validation,
    datamodel_predict,
    draw_contributors,
    lds,
    product_methods,
    split_images,
)
from scipy.stats import spearmanr


def _subsets(k: int = 16, contributors: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = np.zeros((k, contributors))
    for row in masks:
        row[rng.choice(contributors, contributors // 2, replace=False)] = 1
    return masks


def test_lds_is_the_spearman_over_subsets_of_each_image():
    rng = np.random.default_rng(1)
    pred, actual = rng.normal(size=(16, 3)), rng.normal(size=(16, 3))
    expected = [spearmanr(pred[:, j], actual[:, j]).statistic for j in range(3)]
    assert np.allclose(lds(pred, actual), expected)
    assert np.allclose(lds(actual, actual), 1.0)
    assert np.allclose(lds(-actual, actual), -1.0)
    assert np.allclose(lds(np.exp(actual), actual), 1.0)  # a rank score: any monotone prediction is perfect


def test_validation_and_test_images_are_disjoint_and_cover_every_image():
    validation, test = split_images(48, 12)
    assert list(validation) == list(range(12)) and list(test) == list(range(12, 48))
    assert split_images(36, 0)[0].size == 0  # a confirmation run keeps every image for the test
    with pytest.raises(ValueError):
        split_images(12, 12)


def test_the_choice_reads_validation_images_only():
    validation, _test = split_images(6, 3)
    results = {
        "a": np.array([0.8, 0.8, 0.8, 0.1, 0.1, 0.1]),
        "b": np.array([0.5, 0.5, 0.5, 0.9, 0.9, 0.9]),
    }
    assert choose_on_validation(results, ["a", "b"], validation) == "a"
    results["a"][3:] = -1.0  # whatever the test images say
    assert choose_on_validation(results, ["a", "b"], validation) == "a"


def test_the_bootstrap_resamples_masks_as_well_as_images():
    masks = _subsets()
    rng = np.random.default_rng(2)
    effect = rng.normal(size=(1, 8))  # one image: an images-only bootstrap could not vary at all
    actual = masks @ effect.T + rng.normal(scale=0.5, size=(16, 1))
    draws = bootstrap_mean_lds([effect, -effect], masks, actual, np.random.default_rng(3), rounds=200)
    assert draws.shape == (200, 2)
    assert draws[:, 0].std() > 0.02
    assert np.allclose(draws[:, 0], -draws[:, 1])  # the same resample for every method: paired


def test_a_perfect_score_keeps_its_lds_in_every_bootstrap_round():
    masks = _subsets()
    effect = np.random.default_rng(4).normal(size=(5, 8))
    draws = bootstrap_mean_lds([effect], masks, masks @ effect.T, np.random.default_rng(5), rounds=100)
    assert np.allclose(draws, 1.0)


def test_the_datamodel_recovers_an_additive_effect_on_new_subsets():
    train_masks, new_masks = _subsets(40, seed=6), _subsets(16, seed=7)
    effect = np.random.default_rng(8).normal(size=(8, 3))
    predicted = datamodel_predict(train_masks, 0.3 + train_masks @ effect, new_masks)
    assert np.allclose(predicted, 0.3 + new_masks @ effect)
    assert np.allclose(lds(predicted, new_masks @ effect), 1.0)


def test_the_product_recipe_is_one_of_the_rows_the_benchmark_scores():
    methods = product_methods()
    assert methods["gradient"].startswith("gradient main-effect unit lambda_rel=")
    assert float(methods["gradient"].rsplit("=", 1)[1]) in LAMBDAS_REL
    assert int(methods["similarity"].removeprefix("similarity gram top")) in SIMILARITY_TOP_KS


def test_a_held_out_draw_takes_no_excluded_work_and_the_same_seed_draws_the_same():
    by_creator = {f"artist{i}": [f"artist{i}/w{j}" for j in range(30 + i)] for i in range(6)}
    first, eligible = draw_contributors(by_creator, seed=0, contributors=3, works=20)
    assert eligible == 6 and first == draw_contributors(by_creator, seed=0, contributors=3, works=20)[0]
    used = frozenset(w for _name, works in first for w in works[:20])
    held_out, eligible = draw_contributors(by_creator, seed=1, contributors=3, works=20, exclude=used)
    assert not used & {w for _name, works in held_out for w in works}
    assert eligible == 3  # the drawn artists keep 10-15 works outside the development draw: too few


def test_image_conditioning_reads_the_generated_prompts_through_the_training_works(settings):
    from types import SimpleNamespace

    import attribution_lds
    import torch

    from embeddings.encoders.factory import get_encoder

    settings.CLIP_MODEL = "fake"
    get_encoder.cache_clear()
    images = torch.rand(10, 3, 16, 16) * 2 - 1
    captions = ["apple", "car", "house", "tree", "star", "flag", "heart", "fish", "bird", "flower"]
    args = SimpleNamespace(conditioning="image", seed=0)
    conds, prompts = attribution_lds.conditioning(args, captions, 4, images)
    dim = 64 + 3 * 16**2  # the embedding, then the neighbours' thumbnail
    assert conds.shape == (10, dim) and prompts.shape == (4, dim)
    assert torch.allclose(prompts[:, :64].norm(dim=1), torch.ones(4), atol=1e-5)
    keywords = SimpleNamespace(conditioning="keywords", seed=0)
    conds, prompts = attribution_lds.conditioning(keywords, captions, 4, images)
    pick = np.random.default_rng(0 + 3).choice(10, 4, replace=False)  # the benchmark's draw of prompts
    assert torch.equal(
        prompts, conds[pick]
    )  # a caption read as a prompt is its training work's own condition
    get_encoder.cache_clear()
