"""A real worker (the product's Celery app and settings, Redis, prefork) is SIGKILLed in the middle of a training
run; another worker is started, resumes from the last checkpoint and finishes training and the attribution pass
within a bound, with the same weights (bit for bit) and attribution (to float32 rounding) as a run nobody
interrupted. Also: the attribution pass
forks its feature processes inside a daemonic process (a prefork pool process) instead of falling back to one.
Needs Redis and PostgreSQL for the worker test."""

import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from core.models import Lease
from generator.models import GeneratorModel
from tests.celery_workers import (
    kill_worker,
    require_redis_and_postgres,
    send,
    start_worker,
    wait_for,
    worker_env,
)

STEPS, SAVE_EVERY = 40, 5
# the lease dies 10 s after the kill, the reaper runs every 2 s, a worker imports torch in ~10-20 s under load
RECOVERY_S = 60


def weights_and_attribution(model: GeneratorModel) -> tuple[dict, dict]:
    import torch

    from generator.training import MODEL

    saved = torch.load(Path(model.run_dir) / MODEL, weights_only=False)
    with np.load(model.attribution_path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return saved["ema"], arrays


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_training_run_whose_worker_is_killed_resumes_on_a_new_worker_with_identical_weights(
    manifest_folder, tmp_path, settings
):
    require_redis_and_postgres()
    import torch

    from generator.services import generator_model_start, generator_model_train, job_key
    from generator.training import CHECKPOINT

    settings.GENERATOR_STEPS, settings.GENERATOR_SAVE_EVERY = STEPS, SAVE_EVERY
    model = generator_model_start(manifest_ref=str(manifest_folder))
    queue = f"train-crash-{uuid.uuid4().hex[:8]}"
    env = worker_env(tmp_path, PROVENANT_GENERATOR_DIR=str(settings.GENERATOR_DIR))
    log = tmp_path / "worker.log"
    worker = start_worker(env, queue, log, "first")
    try:
        from generator.services import generator_model_plan

        # planned here, sent by the worker's reaper (the test process's Celery runs eagerly)
        generator_model_plan(model=model, run_here=True)
        Lease.objects.filter(job=job_key(model.pk)).update(dispatched_at=None)
        send("core.tasks.leases_reap", [], queue)
        checkpoint = Path(model.run_dir) / CHECKPOINT
        wait_for(lambda: checkpoint.exists(), 180, "a first checkpoint")
        kill_worker(worker)
        step_at_kill = torch.load(checkpoint, weights_only=False)["step"]
        assert step_at_kill < STEPS
        started = time.monotonic()
        worker = start_worker(env, queue, log, "second")
        wait_for(lambda: GeneratorModel.objects.get(pk=model.pk).status != "training", 300, "a trained model")
        recovered_in = time.monotonic() - started
    finally:
        kill_worker(worker)
    model.refresh_from_db()
    assert model.status == "ready", (model.error, log.read_text()[-4000:])
    assert model.steps_done == STEPS and model.config["figures"]["resumed_from"] >= step_at_kill
    train = Lease.objects.get(job=job_key(model.pk), kind="generator_train")
    assert (train.state, train.attempts) == ("done", 2)
    assert Lease.objects.get(job=job_key(model.pk), kind="generator_attribution").state == "done"
    assert recovered_in < RECOVERY_S + 120  # the work left: at most STEPS steps and the attribution pass
    # the same run, uninterrupted, in a fresh folder: the same weights and the same attribution
    settings.GENERATOR_DIR = tmp_path / "reference"
    GeneratorModel.objects.filter(pk=model.pk).update(status="stale")  # so start makes a new record
    reference = generator_model_train(model=generator_model_start(manifest_ref=str(manifest_folder)))
    assert reference.run_dir != model.run_dir and reference.status == "ready"
    (ema, arrays), (ref_ema, ref_arrays) = weights_and_attribution(model), weights_and_attribution(reference)
    assert ema.keys() == ref_ema.keys() and all(torch.equal(ema[k], ref_ema[k]) for k in ema)
    assert arrays.keys() == ref_arrays.keys()
    # the attribution vectors agree to float32 rounding, not bit for bit: the pass's BLAS reductions run with
    # another thread layout in a pool process than in this one (measured: at most 5e-8 apart)
    for name in arrays:
        if arrays[name].dtype.kind == "f":
            np.testing.assert_allclose(arrays[name], ref_arrays[name], rtol=1e-5, atol=1e-6)
        else:
            assert np.array_equal(arrays[name], ref_arrays[name]), name


def _features_in_a_daemonic_process(queue, state: dict, resolution: int) -> None:
    import torch

    from generator.ml.attribution import FeatureConfig, GradientFeaturizer
    from generator.ml.unet import UNet, UNetConfig

    torch.manual_seed(0)
    model = UNet(UNetConfig(resolution=resolution, channels=(8, 16), cond_dim=0))
    images = torch.rand(6, 3, resolution, resolution) * 2 - 1
    featurizer = GradientFeaturizer(model, FeatureConfig(proj_dim=32, timesteps=2), resolution)
    together = torch.stack(list(featurizer.many(images, workers=2, chunk=2)))
    one_by_one = torch.stack(list(featurizer.many(images)))
    queue.put((torch.equal(together, one_by_one), together.shape[0]))


def test_attribution_features_fork_their_workers_inside_a_prefork_pool_process(one_torch_thread):
    """A Celery prefork pool process is a daemonic billiard process: the feature pool must start there."""
    import billiard

    queue = billiard.get_context("fork").Queue()
    process = billiard.get_context("fork").Process(
        target=_features_in_a_daemonic_process, args=(queue, {}, 16), daemon=True
    )
    process.start()
    same, count = queue.get(timeout=240)
    process.join(timeout=30)
    assert (same, count) == (True, 6)
