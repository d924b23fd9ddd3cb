import pytest
from django.core.management import call_command

from generator.models import GeneratedImage, GeneratorModel


def _activate_optout_for(asset_ids):
    # what opt-out sends once an opt-out becomes active (after its transaction commits)
    from optout.signals import optout_activated

    optout_activated.send(sender=None, asset_ids=asset_ids, optout_id=42)


@pytest.mark.django_db
def test_a_model_whose_manifest_gains_an_active_optout_is_refused(
    trained_model, training_assets, member, api_client
):
    _activate_optout_for([training_assets[4].pk])
    trained_model.refresh_from_db()
    assert trained_model.status == GeneratorModel.Status.STALE
    assert trained_model.stale_optout_id == 42

    api_client.force_authenticate(member)
    resp = api_client.post("/api/generate/", {"prompt": "arrow"}, format="json")
    assert resp.status_code == 409
    assert "stale" in resp.json()["message"] and "train_generator" in resp.json()["message"]
    assert not GeneratedImage.objects.exists()


@pytest.mark.django_db
def test_an_optout_for_other_works_leaves_the_model_ready(trained_model):
    _activate_optout_for([10**9])
    trained_model.refresh_from_db()
    assert trained_model.status == GeneratorModel.Status.READY


@pytest.mark.django_db
def test_an_operator_override_generates_and_is_recorded(trained_model, training_assets, operator, api_client):
    _activate_optout_for([training_assets[0].pk])
    api_client.force_authenticate(operator)
    resp = api_client.post("/api/generate/", {"prompt": "arrow", "override_stale": True}, format="json")
    assert resp.status_code == 201, resp.content
    image = GeneratedImage.objects.get()
    assert image.override_stale and image.created_by == operator


@pytest.mark.django_db
def test_a_non_operator_cannot_override(trained_model, training_assets, member, api_client):
    _activate_optout_for([training_assets[0].pk])
    api_client.force_authenticate(member)
    resp = api_client.post("/api/generate/", {"prompt": "arrow", "override_stale": True}, format="json")
    assert resp.status_code == 403
    assert not GeneratedImage.objects.exists()


@pytest.mark.django_db
def test_generate_command_refuses_a_stale_model_with_a_clear_error(trained_model, training_assets):
    from django.core.management.base import CommandError

    _activate_optout_for([training_assets[0].pk])
    with pytest.raises(CommandError, match="stale"):
        call_command("generate", "arrow", "--seed", "1")


@pytest.mark.django_db
def test_retraining_on_a_new_manifest_gives_a_ready_model_again(trained_model, training_assets, tmp_path):
    from generator.manifest import TrainingExample, manifest_write

    _activate_optout_for([training_assets[0].pk])
    clean = tmp_path / "manifest-2"
    manifest_write(
        clean,
        [
            TrainingExample(path=a.local_path, caption=a.title, contributor="x", asset_id=a.pk)
            for a in training_assets[1:]
        ],
    )
    call_command("train_generator", "--manifest", str(clean))
    newest = GeneratorModel.objects.order_by("-id").first()
    assert (
        newest.status == GeneratorModel.Status.READY
        and training_assets[0].pk not in newest.training_asset_ids
    )
    call_command("generate", "arrow", "--seed", "1")
    assert GeneratedImage.objects.get().model == newest


@pytest.mark.django_db
def test_training_on_a_manifest_older_than_an_active_optout_ends_stale(
    manifest_folder, training_assets, member
):
    from generator.services import generator_model_start, generator_model_train
    from optout import services
    from optout.models import ClaimStatus, ContributorClaim

    contributor = training_assets[1].contributor
    ContributorClaim.objects.create(artist=member, contributor=contributor, status=ClaimStatus.VERIFIED)
    services.optout_create(artist=member, scope="contributor", contributor_id=contributor.pk)
    model = generator_model_train(model=generator_model_start(manifest_ref=str(manifest_folder)))
    assert model.status == GeneratorModel.Status.STALE
    assert "active opt-out" in model.stale_reason
