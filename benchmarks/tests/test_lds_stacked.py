"""The LDS benchmark's stacked trainer (every model in one vmap) must train each member exactly as it trains alone."""

from dataclasses import replace
from types import SimpleNamespace

import attribution_lds
import lds_stacked
import numpy as np
import pytest
import torch

from generator.ml.diffusion import TrainConfig, train_state_new, train_steps
from generator.ml.unet import UNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data():
    images = torch.rand((12, 3, 16, 16), generator=torch.Generator().manual_seed(3)) * 2 - 1
    return images, np.repeat(np.arange(4), 3)


def _max_difference(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_each_stacked_member_matches_its_model_trained_alone():
    images, labels = _data()
    members, names = lds_stacked.build_members(labels, n_subsets=2, seed=0, seed_sets=[0, 1])
    config = TrainConfig(steps=6, batch_size=4, seed=0)
    stacked = lds_stacked.StackedTrainer(images, members, config, 16, "cpu")
    while stacked.step < config.steps:
        stacked.train_step()
    # float sums in a different order leave up to ~1.5e-5 (Adam turns them into steps the size of the learning
    # rate, 2e-3); training the members without gradient clipping leaves about 8e-5
    alone_args = SimpleNamespace(resolution=16, device="cpu", steps=6, batch_size=4)
    for m, (seed, rows) in enumerate(members):
        alone = attribution_lds.train_model(images[rows], alone_args, seed=seed)
        assert _max_difference(stacked.ema_model(m).state_dict(), alone.state_dict()) < 2.5e-5
    # the members really differ: subset 0 of seed sets 0 and 1 share data but not weights, batches or noise
    assert names[1][:2] == (0, 0) and names[3][:2] == (0, 1)
    assert _max_difference(stacked.ema_model(1).state_dict(), stacked.ema_model(3).state_dict()) > 1e-3


def test_stacked_probe_losses_equal_the_benchmarks_probe():
    images, labels = _data()
    members, _ = lds_stacked.build_members(labels, n_subsets=2, seed=0, seed_sets=[0])
    config = TrainConfig(steps=3, batch_size=4, seed=0)
    stacked = lds_stacked.StackedTrainer(images, members, config, 16, "cpu")
    while stacked.step < config.steps:
        stacked.train_step()
    gen = images[:3]
    losses = stacked.probe_losses([1, 2], gen, n_t=5, draws=2)
    for row, m in enumerate([1, 2]):
        expected = attribution_lds.probe_losses(stacked.ema_model(m), gen, n_t=5, draws=2)
        np.testing.assert_allclose(losses[row], expected, rtol=1e-5)


def test_the_lds_benchmark_trains_and_probes_conditioned_models_on_each_works_caption():
    images, _ = _data()
    captions = [f"{word} drawing" for word in ["cat", "dog", "car", "tree"] * 3]
    args = SimpleNamespace(
        resolution=16, device="cpu", steps=3, batch_size=4, seed=0, conditioning="keywords"
    )
    conds, gen_conds = attribution_lds.conditioning(args, captions, 4, images)
    assert conds.shape[0] == 12 and gen_conds.shape[0] == 4
    # each generated image's prompt is the caption of one training work
    assert all(any(torch.equal(g, c) for c in conds) for g in gen_conds)
    model = attribution_lds.train_model(images, args, seed=0, conds=conds)
    assert model.config.cond_dim == conds.shape[1] and model.config.scale_shift
    own = attribution_lds.probe_losses(model, images[:4], n_t=3, draws=1, conds=gen_conds)
    other = attribution_lds.probe_losses(model, images[:4], n_t=3, draws=1, conds=gen_conds.flip(0))
    assert not np.allclose(own, other)


def test_conditioned_stacked_members_match_their_models_trained_alone_and_probe_under_their_prompts():
    images, labels = _data()
    conds = torch.rand((12, 5), generator=torch.Generator().manual_seed(4))
    members, _ = lds_stacked.build_members(labels, n_subsets=2, seed=0, seed_sets=[0, 1])
    # a high dropout rate, so six steps drop some conditions and keep others
    config = TrainConfig(steps=6, batch_size=4, seed=0, cond_drop=0.5)
    stacked = lds_stacked.StackedTrainer(images, members, config, 16, "cpu", conds=conds)
    while stacked.step < config.steps:
        stacked.train_step()
    for m, (seed, rows) in enumerate(members):
        alone = _train_alone(images[rows], conds[rows], replace(config, seed=seed))
        assert _max_difference(stacked.ema_model(m).state_dict(), alone.state_dict()) < 2.5e-5
    gen, gen_conds = images[:3], conds[[5, 0, 9]]
    losses = stacked.probe_losses([1, 2], gen, n_t=5, draws=2, gen_conds=gen_conds)
    for row, m in enumerate([1, 2]):
        expected = attribution_lds.probe_losses(stacked.ema_model(m), gen, n_t=5, draws=2, conds=gen_conds)
        np.testing.assert_allclose(losses[row], expected, rtol=1e-5)
    # the conditions reach the model: other prompts give other losses
    other_prompts = stacked.probe_losses([1], gen, n_t=5, draws=2, gen_conds=gen_conds.flip(0))
    assert not np.allclose(other_prompts[0], losses[0])


def _train_alone(images, conds, config: TrainConfig):
    """attribution_lds.train_model's lone conditioned model, with this config's dropout rate."""
    torch.manual_seed(config.seed)
    model = UNet(attribution_lds.unet_config(SimpleNamespace(resolution=16), conds.shape[1]))
    state = train_state_new(model, config)
    for _ in train_steps(state, images, conds, config):
        pass
    return state.ema.model


def test_the_stacked_trainer_refuses_mirror_flips_it_would_not_draw():
    images, labels = _data()
    members, _ = lds_stacked.build_members(labels, n_subsets=1, seed=0, seed_sets=[0])
    with pytest.raises(ValueError, match="hflip"):
        lds_stacked.StackedTrainer(images, members, TrainConfig(hflip=True), 16, "cpu")
