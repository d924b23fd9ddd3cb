from pathlib import Path

import pytest

from generator.models import GeneratorModel


@pytest.mark.django_db
def test_training_records_lineage_contributors_and_artifacts(trained_model, manifest_folder, training_assets):
    from generator.manifest import content_hash

    assert trained_model.status == GeneratorModel.Status.READY
    assert trained_model.manifest_hash == content_hash(manifest_folder)
    assert sorted(trained_model.training_asset_ids) == sorted(a.pk for a in training_assets)
    # credited by the registry's contributor, not the raw manifest string
    assert {c["label"] for c in trained_model.training_contributors} == {"Artist 0", "Artist 1", "Artist 2"}
    assert all(c["contributor_id"] for c in trained_model.training_contributors)
    assert Path(trained_model.checkpoint_path).exists() and Path(trained_model.attribution_path).exists()
    assert trained_model.steps_done == 6


@pytest.mark.django_db
def test_interrupted_training_resumes_from_its_checkpoint(manifest_folder, settings):
    import torch

    from generator.services import generator_model_start, generator_model_train
    from generator.training import CHECKPOINT

    settings.GENERATOR_STEPS = 3
    first = generator_model_start(manifest_ref=str(manifest_folder))
    generator_model_train(model=first)
    ckpt = Path(first.run_dir) / CHECKPOINT
    state = torch.load(ckpt, weights_only=False)
    assert state["step"] == 3

    # the same run asked for more steps: pretend it was interrupted at step 3 of 6
    first.status = GeneratorModel.Status.TRAINING
    first.config["run"]["steps"] = 6
    first.save()
    resumed = generator_model_train(model=first)
    assert resumed.config["figures"]["resumed_from"] == 3
    assert resumed.steps_done == 6
    assert torch.load(ckpt, weights_only=False)["step"] == 6


@pytest.mark.django_db
def test_starting_the_same_unfinished_run_twice_reuses_it(manifest_folder):
    from generator.services import generator_model_start

    a = generator_model_start(manifest_ref=str(manifest_folder))
    b = generator_model_start(manifest_ref=str(manifest_folder))
    assert a.pk == b.pk and GeneratorModel.objects.count() == 1


@pytest.mark.django_db
def test_an_unknown_attribution_output_is_refused_before_training(manifest_folder, settings):
    from core.exceptions import ApplicationError
    from generator.services import generator_model_start

    settings.GENERATOR_FEATURE_OUTPUT = "loss"
    with pytest.raises(ApplicationError, match="GENERATOR_FEATURE_OUTPUT is 'loss'"):
        generator_model_start(manifest_ref=str(manifest_folder))
    assert GeneratorModel.objects.count() == 0


def test_keyword_conditioning_is_deterministic_and_normalised():
    import numpy as np

    from generator.conditioning import hash_keywords

    a, b = hash_keywords(["Red Cat, sitting", "red cat sitting"], 64)
    assert np.allclose(a, b) and np.isclose(np.linalg.norm(a), 1.0)
