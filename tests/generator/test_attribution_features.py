"""The attribution features of many images: worker processes and the streamed sums must equal the plain loop."""

from dataclasses import replace

import pytest
import torch

from generator.ml.attribution import ContributorAccumulator, GradientFeaturizer
from generator.ml.features import FeatureConfig
from generator.ml.unet import UNet, UNetConfig

CONFIG = FeatureConfig(proj_dim=256, timesteps=3)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(cond_dim: int) -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(resolution=16, channels=(8, 16), cond_dim=cond_dim, groups=4))


def _images(n: int) -> torch.Tensor:
    return torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.mark.parametrize(
    ("cond_dim", "with_conds"),
    [(8, True), (8, False), (0, False)],
    ids=["conds", "cond-model-none", "uncond"],
)
def test_worker_processes_give_the_loops_features_in_order(cond_dim, with_conds):
    featurizer = GradientFeaturizer(_model(cond_dim), CONFIG, 16)
    images = _images(10)
    conds = torch.randn((10, cond_dim), generator=torch.Generator().manual_seed(2)) if with_conds else None
    loop = torch.stack([featurizer(images[i], None if conds is None else conds[i]) for i in range(10)])
    workers = torch.stack(list(featurizer.many(images, conds, workers=2, chunk=4)))
    assert workers.shape == loop.shape == (10, 256)
    assert torch.allclose(loop.norm(dim=1), torch.ones(10))
    assert (workers - loop).abs().max() < 1e-5  # unit rows: an absolute bound is a relative one
    # distinct images give distinct features (a shuffled or repeated chunk would fail the bound above)
    assert (loop[0] - loop[1]).abs().max() > 1e-3


def test_accumulating_blocks_equals_adding_one_image_at_a_time():
    phis = torch.randn((9, 32), generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 2, 1, 0, 0, 2, 1, 1, 2])
    one, blocks = ContributorAccumulator(32, 3), ContributorAccumulator(32, 3)
    for phi, label in zip(phis, labels, strict=True):
        one.add(phi, int(label))
    blocks.add_many(phis[:4], labels[:4])
    blocks.add_many(phis[4:], labels[4:])
    assert blocks.count == one.count == 9
    assert torch.allclose(blocks.gram, one.gram) and torch.allclose(blocks.sums, one.sums)


def test_main_effect_features_are_half_the_vnorm_ones_minus_the_training_loss_ones():
    """f = 1/2 ||v||^2 - ||v - v*||^2, checked against the training loss (generator.ml.diffusion.v_loss), an
    independent path to ||v - v*||^2: features are linear in f, so raw main-effect = 1/2 raw vnorm - loss features."""
    from generator.ml.diffusion import v_loss

    raw = replace(CONFIG, normalise=False)
    model, x0 = _model(0), _images(1)[0]
    main = GradientFeaturizer(model, replace(raw, output="main-effect"), 16)(x0)
    vnorm_featurizer = GradientFeaturizer(model, replace(raw, output="vnorm"), 16)
    vnorm = vnorm_featurizer(x0)
    ts, eps = vnorm_featurizer.ts, vnorm_featurizer.eps
    with torch.enable_grad():
        loss_sum = (v_loss(model, x0[None].expand(len(ts), -1, -1, -1), ts, eps, None) * x0.numel()).mean()
        grads = torch.autograd.grad(loss_sum, list(model.parameters()))
    loss = vnorm_featurizer.sketch(torch.cat([g.reshape(-1) for g in grads]))
    expected = 0.5 * vnorm - loss
    assert (main - expected).abs().max() < 1e-4 * expected.abs().max()
    # the two outputs are different features, not a rescaling of each other
    assert torch.nn.functional.cosine_similarity(main, vnorm, dim=0) < 0.99


def test_an_unknown_output_function_is_refused():
    with pytest.raises(ValueError, match="unknown attribution output 'loss'"):
        GradientFeaturizer(_model(0), replace(CONFIG, output="loss"), 16)


def test_the_method_version_names_the_output_function():
    assert CONFIG.method_version() == "dtrak-maineffect-countsketch256-t3d1-unit"
    assert replace(CONFIG, output="vnorm").method_version() == "dtrak-vnorm-countsketch256-t3d1-unit"
