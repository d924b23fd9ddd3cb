from pathlib import Path

import pytest
from PIL import Image

from generator.models import AttributionRecord, GeneratedImage


@pytest.mark.django_db
def test_generation_stores_image_model_seed_prompt_and_both_ledger_rows(trained_model, member):
    from generator.services import generated_image_create

    image = generated_image_create(prompt="a green arrow", seed=7, user=member)
    stored = GeneratedImage.objects.get(pk=image.pk)
    assert (stored.model_id, stored.seed, stored.prompt, stored.created_by) == (
        trained_model.pk,
        7,
        "a green arrow",
        member,
    )
    with stored.image.open("rb") as f:
        assert Image.open(f).size == (16, 16)
    assert {r.method for r in stored.attributions.all()} == {"gradient", "similarity"}


@pytest.mark.django_db
def test_the_gradient_version_names_the_models_own_feature_recipe(trained_model, settings):
    from generator.runtime import loaded_generator
    from generator.services import generated_image_create

    settings.GENERATOR_FEATURE_TIMESTEPS = 7  # a later default must not relabel what this model computes
    loaded_generator.cache_clear()
    image = generated_image_create(prompt="arrow", seed=1)
    record = image.attributions.get(method="gradient")
    assert record.method_version == "dtrak-maineffect-countsketch256-t2d1-unit"


@pytest.mark.django_db
def test_a_model_trained_before_the_output_option_keeps_its_vnorm_features(trained_model):
    """Its contributor vectors were solved on v-norm features: scoring them with another output would be wrong."""
    import json

    import numpy as np

    from generator.runtime import loaded_generator
    from generator.services import generated_image_create

    path = Path(trained_model.attribution_path)
    with np.load(path) as art:
        arrays = {k: art[k] for k in art.files}
    recipe = json.loads(str(arrays["feature_config"]))
    del recipe["output"]
    arrays["feature_config"] = np.array(json.dumps(recipe))
    np.savez(path, **arrays)
    loaded_generator.cache_clear()
    image = generated_image_create(prompt="arrow", seed=1)
    assert image.attributions.get(method="gradient").method_version == "dtrak-vnorm-countsketch256-t2d1-unit"


@pytest.mark.django_db
def test_same_seed_and_prompt_give_the_same_pixels(trained_model):
    from generator.services import generated_image_create

    a = generated_image_create(prompt="arrow", seed=3)
    b = generated_image_create(prompt="arrow", seed=3)
    assert a.image.read() == b.image.read()


@pytest.mark.django_db
def test_shares_sum_to_one_for_every_method(trained_model):
    from generator.services import generated_image_create

    for seed in range(3):
        generated_image_create(prompt="a flowchart box", seed=seed)
    records = AttributionRecord.objects.all()
    assert records.count() == 6
    for record in records:
        assert sum(record.shares.values()) == pytest.approx(1.0, abs=1e-9)
        assert all(v >= 0 for v in record.shares.values())
        assert set(record.raw_scores) == {"Artist 0", "Artist 1", "Artist 2"}


def test_shares_keep_top_contributors_and_pool_the_rest_as_others():
    import numpy as np

    from generator.ml.attribution import shares_from_scores

    shares = shares_from_scores(np.array([4.0, -1.0, 3.0, 2.0, 1.0]), list("abcde"), top_k=2)
    assert list(shares) == ["a", "c", "others"]
    assert shares["a"] == pytest.approx(0.4) and shares["others"] == pytest.approx(0.3)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_no_positive_score_spreads_shares_evenly():
    import numpy as np

    from generator.ml.attribution import shares_from_scores

    shares = shares_from_scores(np.array([-1.0, -2.0]), ["a", "b"], top_k=5)
    assert shares == {"a": pytest.approx(0.5), "b": pytest.approx(0.5)}


@pytest.mark.django_db
def test_generate_api_returns_images_with_labelled_attributions(trained_model, member, api_client):
    api_client.force_authenticate(member)
    resp = api_client.post("/api/generate/", {"prompt": "arrow", "seed": 1, "n": 2}, format="json")
    assert resp.status_code == 201, resp.content
    images = resp.json()["images"]
    assert [i["seed"] for i in images] == [1, 2]
    labels = {a["method"]: a["label"] for a in images[0]["attributions"]}
    assert labels == {"gradient": "influence", "similarity": "similarity"}


@pytest.mark.django_db
def test_generate_api_refuses_anonymous_users(trained_model, api_client):
    assert api_client.post("/api/generate/", {"prompt": "arrow"}, format="json").status_code in (401, 403)


@pytest.mark.django_db
def test_generation_without_a_trained_model_is_a_clear_conflict(member, api_client):
    api_client.force_authenticate(member)
    resp = api_client.post("/api/generate/", {"prompt": "arrow"}, format="json")
    assert resp.status_code == 409 and "train_generator" in resp.json()["message"]
