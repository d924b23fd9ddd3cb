import pytest
from django.utils import timezone

from generator.models import GeneratorModel


@pytest.mark.django_db
def test_retrain_job_trains_on_the_latest_published_manifest_and_records_it(
    manifest_folder, django_capture_on_commit_callbacks
):
    from generator.manifest import content_hash
    from generator.tasks import generator_retrain_latest_enqueue, generator_train_task
    from training_filter.models import ManifestBuild

    build = ManifestBuild.objects.create(
        input_kind="collection",
        input_ref="gen-test",
        as_of=timezone.now(),
        status=ManifestBuild.Status.PUBLISHED,
        output_path=str(manifest_folder),
        finished_at=timezone.now(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        model_id = generator_retrain_latest_enqueue()
    model = GeneratorModel.objects.get(pk=model_id)
    assert model.status == GeneratorModel.Status.READY
    assert (model.manifest_build_id, model.manifest_hash) == (build.pk, content_hash(manifest_folder))
    # a second run of the finished task changes nothing
    trained_at = model.trained_at
    generator_train_task(model.pk)
    model.refresh_from_db()
    assert model.trained_at == trained_at


@pytest.mark.django_db
def test_retrain_without_a_published_manifest_says_so():
    from core.exceptions import ApplicationError
    from generator.services import generator_model_start

    with pytest.raises(ApplicationError, match="no published manifest"):
        generator_model_start(manifest_ref="latest")
