"""The offline default model: built from the shipped tower weights, trained heads, saved, loaded back by open_clip.

One small model is built per module (about 10 s on 2 cores) and shared; tests that change it work on copies.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from embeddings.encoders import default_model as dm
from embeddings.encoders import onnx_tower
from embeddings.encoders.openclip import OpenClipEncoder, WeightsMissing

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openclipart"
TINY_SET = 24


def _caption(path: Path) -> str:
    return f"{path.stem.replace('_', ' ').replace('-', ' ')}. {path.parent.name}"


@pytest.fixture(scope="module")
def tiny_set():
    from provenance.imaging import load_rgb_path

    paths = sorted(FIXTURES.rglob("*.svg"))[:: max(1, 241 // TINY_SET)][:TINY_SET]
    return [load_rgb_path(p, max_side=256).image for p in paths], [_caption(p) for p in paths]


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_set):
    """(models_dir, in-memory model, image features, text features, losses) after 5 epochs on the tiny set."""
    import torch

    models_dir = tmp_path_factory.mktemp("models")
    images, captions = tiny_set
    model, preprocess, tokenizer = dm.create_base_model(dm.model_dir(models_dir), embed_dim=64)
    with torch.inference_mode():
        img = dm.image_features(model, torch.stack([preprocess(im) for im in images]))
    txt = dm.encode_caption_features(model, tokenizer, captions)
    before = dm.mean_loss(model, img, txt)
    history = dm.train_heads(model, img, txt, epochs=5, batch_size=8, lr=3e-3)
    after = dm.mean_loss(model, img, txt)
    dm.save_model(model, cfg=dm.register_model_config(dm.model_dir(models_dir)), folder=dm.model_dir(models_dir),
                  metrics={"test": True})  # fmt: skip
    return {"dir": models_dir, "model": model, "tokenizer": tokenizer, "preprocess": preprocess,
            "loss_before": before, "loss_after": after, "history": history}  # fmt: skip


def test_training_the_heads_for_a_few_epochs_lowers_the_contrastive_loss(built):
    assert built["loss_after"] < built["loss_before"] - 0.3
    assert built["history"][-1] < built["history"][0]


def test_caption_features_sorted_and_trimmed_equal_the_padded_forward(built, tiny_set):
    import torch

    captions = tiny_set[1][:10] + ["a red fox", "map of poland. polska, map, poland, europe, country, border"]
    with torch.inference_mode():
        padded = dm.text_features(built["model"], built["tokenizer"](captions))
    fast = dm.encode_caption_features(built["model"], built["tokenizer"], captions, batch_size=5)
    assert torch.allclose(padded, fast, atol=1e-5)


def test_only_the_projection_heads_and_logit_scale_are_trainable(built):
    trainable = {name for name, p in built["model"].named_parameters() if p.requires_grad}
    assert trainable == {"visual.head.proj.weight", "text.proj.weight", "logit_scale"}


def test_default_model_encodes_a_fixture_image_and_a_caption_to_unit_vectors(built, tiny_set):
    encoder = OpenClipEncoder(dm.MODEL_NAME, "", models_dir=built["dir"])
    images, captions = tiny_set
    vectors = encoder.encode_images(images[:3])
    texts = encoder.encode_texts(captions[:2])
    assert vectors.shape == (3, 64) and texts.shape == (2, 64)
    assert vectors.dtype == np.float32 and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert encoder.space.dim == 64 and encoder.space.model == dm.MODEL_NAME
    assert encoder.encode_texts([]).shape == (0, 64)


def test_encode_paths_decodes_in_workers_and_reports_undecodable_files(built, tmp_path):
    encoder = OpenClipEncoder(dm.MODEL_NAME, "", models_dir=built["dir"])
    good = sorted(FIXTURES.rglob("*.svg"))[:3]
    bad = tmp_path / "not-an-image.png"
    bad.write_bytes(b"this is text")
    done, vectors, failed = encoder.encode_paths([str(good[0]), str(bad), str(good[1])], workers=1)
    assert done == [0, 2] and vectors.shape == (2, 64)
    assert [i for i, _ in failed] == [1]
    np.testing.assert_allclose(vectors[0], encoder.encode_images([_decode(good[0])])[0], atol=1e-5)


def _decode(path: Path):
    from embeddings.encoders.batch_decode import DECODE_MAX_SIDE
    from provenance.imaging import load_rgb_path

    return load_rgb_path(path, max_side=DECODE_MAX_SIDE).image


def test_saved_checkpoint_loads_back_in_open_clip_with_identical_outputs(built, tiny_set):
    import open_clip
    import torch

    path = dm.checkpoint_path(built["dir"])
    loaded, _, preprocess = open_clip.create_model_and_transforms(
        dm.MODEL_NAME, pretrained=str(path), **dm.preprocess_kwargs()
    )
    loaded.eval()
    images, captions = tiny_set
    pixels = torch.stack([preprocess(im) for im in images[:4]])
    tokens = built["tokenizer"](captions[:4])
    with torch.inference_mode():
        for a, b in [
            (loaded.encode_image(pixels), built["model"].encode_image(pixels)),
            (loaded.encode_text(tokens), built["model"].encode_text(tokens)),
        ]:
            assert torch.allclose(a, b, atol=1e-5)


def test_folding_the_batch_norms_into_the_convolutions_keeps_the_features(built, tiny_set):
    import copy

    import torch

    folded = copy.deepcopy(built["model"])
    assert dm.fold_batch_norms(folded) == 49
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.visual.modules())
    pixels = torch.stack([built["preprocess"](im) for im in tiny_set[0][:6]])
    with torch.inference_mode():
        expected, got = built["model"].encode_image(pixels), folded.encode_image(pixels)
    assert torch.allclose(got, expected, atol=1e-4) and not torch.equal(got, expected)


def test_a_convolution_whose_output_is_read_twice_is_left_unfolded():
    from types import SimpleNamespace

    import torch
    from timm.layers.norm_act import BatchNormAct2d

    class ReadsTwice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 4, 3), BatchNormAct2d(4)
            self.bn.eval()
            self.bn.running_mean.fill_(0.5)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y  # folding would change the second reading too

    model = SimpleNamespace(visual=SimpleNamespace(trunk=ReadsTwice()))
    trunk = model.visual.trunk
    assert dm.fold_batch_norms(model) == 0
    assert model.visual.trunk is trunk and isinstance(trunk.bn, BatchNormAct2d)


def test_the_image_tower_runs_in_onnx_runtime_with_pytorchs_features(built, tiny_set, settings):
    images = tiny_set[0][:6]
    fast = OpenClipEncoder(dm.MODEL_NAME, "", models_dir=built["dir"])
    features = fast.encode_images(images)
    assert fast._fast_image_tower is not None
    assert onnx_tower.file_path(fast.onnx_folder, fast.onnx_name).is_file()
    settings.PROVENANT_IMAGE_RUNTIME = "torch"
    eager = OpenClipEncoder(dm.MODEL_NAME, "", models_dir=built["dir"])
    expected = eager.encode_images(images)
    assert eager._fast_image_tower is None
    np.testing.assert_allclose(features, expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(features, axis=1), 1, atol=1e-5)
    # a batch of one runs in the same exported graph (the batch size is not fixed in it)
    np.testing.assert_allclose(fast.encode_images(images[:1]), expected[:1], atol=1e-5)


def _own_copy(built, tmp_path):
    """The built model in a models folder of its own, with no ONNX file yet."""
    shutil.copytree(dm.model_dir(built["dir"]), dm.model_dir(tmp_path))
    return OpenClipEncoder(dm.MODEL_NAME, "", models_dir=tmp_path)


def test_an_onnx_file_that_gives_other_features_is_not_used(built, tiny_set, tmp_path, caplog):
    import torch

    encoder = _own_copy(built, tmp_path)
    other = torch.nn.Sequential(
        torch.nn.Conv2d(3, encoder.space.dim, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    ).eval()
    probe = np.random.default_rng(0).standard_normal((2, 3, 224, 224), dtype=np.float32)
    onnx_tower._exported(other, probe, onnx_tower.file_path(encoder.onnx_folder, encoder.onnx_name))

    features = encoder.encode_images(tiny_set[0][:3])
    assert encoder._fast_image_tower is None
    assert "features differ from PyTorch's" in caplog.text
    with torch.inference_mode():
        expected = built["model"].encode_image(
            torch.stack([built["preprocess"](im) for im in tiny_set[0][:3]]), normalize=True
        )
    np.testing.assert_allclose(features, expected.numpy(), atol=1e-4)


def test_a_tower_that_cannot_be_exported_stays_in_pytorch(built, tiny_set, tmp_path, caplog, monkeypatch):
    import torch

    def refuse(*args, **kwargs):
        raise RuntimeError("an operator ONNX has no equivalent for")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    encoder = _own_copy(built, tmp_path)
    features = encoder.encode_images(tiny_set[0][:2])
    assert encoder._fast_image_tower is None and features.shape == (2, encoder.space.dim)
    assert "ONNX export or load failed (RuntimeError" in caplog.text
    assert not list(encoder.onnx_folder.glob("*"))  # no half-written file left for the next process


def test_space_record_matches_the_encoder_and_changes_when_weights_change(built, tmp_path):
    import torch

    record = dm.read_space_record(dm.model_dir(built["dir"]))
    encoder = OpenClipEncoder(dm.MODEL_NAME, "", models_dir=built["dir"])
    assert record["space_id"] == encoder.space.id
    assert record["dim"] == 64 and record["weights_sha256"] == encoder.space.pretrained

    folder = tmp_path / dm.MODEL_NAME
    shutil.copytree(dm.model_dir(built["dir"]), folder)
    state = torch.load(folder / dm.CHECKPOINT_FILE, weights_only=True)
    state["text.proj.weight"] += 0.01
    torch.save(state, folder / dm.CHECKPOINT_FILE)
    changed = OpenClipEncoder(dm.MODEL_NAME, str(folder / dm.CHECKPOINT_FILE))
    assert changed.space.id != encoder.space.id
    assert changed.space.dim == encoder.space.dim


def test_missing_default_checkpoint_says_to_run_build_default_model(tmp_path):
    encoder = OpenClipEncoder(dm.MODEL_NAME, "", models_dir=tmp_path)
    with pytest.raises(WeightsMissing) as caught:
        encoder.encode_texts(["a red fox"])
    assert "python manage.py build_default_model" in caught.value.message
    assert str(dm.checkpoint_path(tmp_path)) in caught.value.message


def test_missing_weights_file_names_the_path_to_fill(tmp_path):
    missing = tmp_path / "ViT-B-32-laion.bin"
    with pytest.raises(WeightsMissing) as caught:
        OpenClipEncoder("ViT-B-32", str(missing)).space  # noqa: B018
    assert str(missing) in caught.value.message and "CLIP_PRETRAINED" in caught.value.message


def test_an_unknown_pretrained_tag_lists_the_known_tags():
    with pytest.raises(WeightsMissing) as caught:
        OpenClipEncoder("ViT-B-32", "no-such-tag").space  # noqa: B018
    assert "laion2b_s34b_b79k" in caught.value.message


def test_held_out_split_is_deterministic_and_near_the_requested_share():
    held = [dm.is_held_out(i, 0.2) for i in range(5000)]
    assert held == [dm.is_held_out(i, 0.2) for i in range(5000)]
    assert 0.17 < sum(held) / len(held) < 0.23


def test_recall_at_k_counts_the_own_image_among_the_k_nearest():
    import torch

    eye = torch.eye(4)
    assert dm.recall_at_k(eye, eye, k=1) == 1.0
    assert dm.recall_at_k(eye, eye.flip(0), k=1) == 0.0


@pytest.mark.slow
@pytest.mark.django_db
def test_build_default_model_command_trains_saves_and_reports_recall(settings, tmp_path):
    from django.core.management import call_command

    from provenance.models import Asset, Collection

    settings.PROVENANT_MODELS_DIR = tmp_path / "models"
    collection = Collection.objects.create(name="tiny")
    for path in sorted(FIXTURES.rglob("*.svg"))[:30]:
        Asset.objects.create(
            collection=collection, source=str(path), local_path=str(path), title=_caption(path)
        )
    out = _Capture()
    call_command("build_default_model", "--collection", "tiny", "--epochs", "3", "--no-cache", "--workers", "1",
                 stdout=out)  # fmt: skip
    assert "recall@10" in out.text and "trained vs" in out.text
    record = dm.read_space_record(dm.model_dir(settings.PROVENANT_MODELS_DIR))
    assert record["metrics"]["n_train"] + record["metrics"]["n_held_out"] == 30
    assert dm.checkpoint_path(settings.PROVENANT_MODELS_DIR).is_file()
    assert not list(dm.model_dir(settings.PROVENANT_MODELS_DIR).glob("*.part"))


class _Capture:
    def __init__(self):
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s

    def flush(self) -> None:
        pass


def test_build_with_if_missing_leaves_an_existing_model_alone(built, settings):
    from django.core.management import call_command

    settings.PROVENANT_MODELS_DIR = built["dir"]
    checkpoint = dm.checkpoint_path(built["dir"])
    before = checkpoint.stat().st_mtime_ns
    out = _Capture()
    call_command("build_default_model", "--collection", "nothing-here", "--if-missing", stdout=out)
    assert "already built" in out.text
    assert checkpoint.stat().st_mtime_ns == before
