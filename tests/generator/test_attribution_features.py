"""The attribution features of many images: worker processes and the streamed sums must equal the plain loop."""

import pytest
import torch

from generator.ml.attribution import ContributorAccumulator, FeatureConfig, GradientFeaturizer
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
