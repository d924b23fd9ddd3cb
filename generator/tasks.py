"""Thin Celery tasks taking ids, each step under its lease (core/leases.py): the training run, then the attribution
pass. A dead worker's step is restarted by the reaper (training resumes from its checkpoint); a second run of a
finished step changes nothing."""

from celery import shared_task

from core import leases

# the training run and the attribution pass are hours long on a CPU at full size
STEP_TIME_LIMIT = 3 * 3600


def _model_failed(model_id: int, error: str) -> None:
    from generator.services import generator_model_fail

    generator_model_fail(model_id=model_id, error=error)


leases.register_job("generator_model", _model_failed)


def _run_step(step_name: str, task, model_id: int) -> str:
    from generator import services
    from generator.models import GeneratorModel

    model = GeneratorModel.objects.get(pk=model_id)
    try:
        getattr(services, step_name)(model=model, holder=leases.holder_name(task.request.id))
    except leases.LeaseLost:
        return "taken-over"  # presumed dead, it was replaced: the new holder goes on from the checkpoint
    except Exception as exc:
        services.generator_model_fail(model_id=model_id, error=f"{step_name}: {exc!r}")
        raise
    leases.leases_dispatch(job=services.job_key(model_id))  # the attribution pass, once training is done
    model.refresh_from_db()
    return model.status


@shared_task(bind=True, soft_time_limit=STEP_TIME_LIMIT, time_limit=STEP_TIME_LIMIT + 300, acks_late=True)
def generator_train_task(self, model_id: int) -> str:
    return _run_step("generator_train_step", self, model_id)


@shared_task(bind=True, soft_time_limit=STEP_TIME_LIMIT, time_limit=STEP_TIME_LIMIT + 300, acks_late=True)
def generator_attribution_task(self, model_id: int) -> str:
    return _run_step("generator_attribution_step", self, model_id)


def generator_retrain_latest_enqueue() -> int:
    """Retrain on the newest clean manifest: the job an operator runs after a model goes stale."""
    from django.db import transaction

    from generator.models import GeneratorModel
    from generator.services import generator_model_plan, generator_model_start

    model = generator_model_start(manifest_ref="latest")
    transaction.on_commit(
        lambda: generator_model_plan(model=GeneratorModel.objects.get(pk=model.pk), run_here=False)
    )
    return model.pk
