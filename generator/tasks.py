"""Thin Celery tasks taking ids; a second run of a finished task changes nothing."""

from celery import shared_task


@shared_task(soft_time_limit=3 * 3600, time_limit=3 * 3600 + 300, acks_late=True)
def generator_train_task(model_id: int) -> str:
    from generator.models import GeneratorModel
    from generator.services import generator_model_train

    model = GeneratorModel.objects.get(pk=model_id)
    generator_model_train(model=model)
    return model.version


def generator_retrain_latest_enqueue() -> int:
    """Retrain on the newest clean manifest: the job an operator runs after a model goes stale."""
    from django.db import transaction

    from generator.services import generator_model_start

    model = generator_model_start(manifest_ref="latest")
    transaction.on_commit(lambda: generator_train_task.delay(model.pk))
    return model.pk
