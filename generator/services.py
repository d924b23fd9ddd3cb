"""Writes: training runs with lineage, generation with its attribution ledger rows, staleness."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import secrets
import time
from pathlib import Path

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from core import leases
from core.exceptions import ApplicationError
from core.models import Lease
from core.permissions import is_operator
from generator import conf
from generator.manifest import ManifestSource, TrainingExample, content_hash, manifest_read
from generator.models import AttributionRecord, GeneratedImage, GeneratorModel
from optout.exclusions import active_optout_owners

log = logging.getLogger(__name__)


# --- manifests ------------------------------------------------------------------------------------------------


def manifest_source_resolve(ref: str) -> ManifestSource:
    """`latest`, a ManifestBuild id, or (development, tests) a manifest folder path."""
    path = Path(ref)
    if ref not in ("latest",) and not ref.isdigit():
        if not path.is_dir():
            raise ApplicationError(f"no manifest folder at {ref}", status_code=404)
        return ManifestSource(build_id=None, folder=path, content_hash=content_hash(path))
    from training_filter.models import ManifestBuild

    builds = ManifestBuild.objects.filter(status=ManifestBuild.Status.PUBLISHED)
    build = (
        builds.order_by("-finished_at", "-id").first()
        if ref == "latest"
        else builds.filter(pk=int(ref)).first()
    )
    if build is None:
        raise ApplicationError(f"no published manifest build {ref!r}", status_code=404)
    folder = Path(build.output_path)
    return ManifestSource(
        build_id=build.pk, folder=folder, content_hash=build.content_hash or content_hash(folder)
    )


def _with_contributor_ids(examples: list[TrainingExample]) -> list[TrainingExample]:
    """Credit by the registry's contributor where the asset is known (one person, one label)."""
    from provenance.models import Asset

    ids = [e.asset_id for e in examples if e.asset_id is not None]
    rows = dict(
        Asset.objects.filter(pk__in=ids, contributor__isnull=False).values_list("pk", "contributor_id")
    )
    names = dict(
        Asset.objects.filter(pk__in=ids, contributor__isnull=False).values_list(
            "pk", "contributor__display_name"
        )
    )
    return [
        dataclasses.replace(e, contributor_id=rows[e.asset_id], contributor=names[e.asset_id])
        if e.asset_id in rows
        else e
        for e in examples
    ]


# --- training -------------------------------------------------------------------------------------------------


def run_config_from_settings(*, steps: int | None, resolution: int | None, seed: int) -> dict:
    from generator.training import RunConfig

    return dataclasses.asdict(
        RunConfig(
            resolution=resolution or conf.get("GENERATOR_RESOLUTION"),
            steps=steps or conf.get("GENERATOR_STEPS"),
            seed=seed,
            save_every=conf.get("GENERATOR_SAVE_EVERY"),
            proj_dim=conf.get("GENERATOR_PROJ_DIM"),
            feature_timesteps=conf.get("GENERATOR_FEATURE_TIMESTEPS"),
            feature_noise_draws=conf.get("GENERATOR_FEATURE_NOISE_DRAWS"),
            feature_normalise=conf.get("GENERATOR_FEATURE_NORMALISE"),
            feature_output=conf.get("GENERATOR_FEATURE_OUTPUT"),
            lambda_rel=conf.get("GENERATOR_LAMBDA_REL"),
            threads=conf.get("GENERATOR_THREADS"),
            batch_size=conf.get("GENERATOR_BATCH_SIZE"),
            channels=tuple(conf.get("GENERATOR_CHANNELS")),
            device=conf.get("GENERATOR_DEVICE"),
        )
    )


def generator_model_start(
    *,
    manifest_ref: str,
    steps: int | None = None,
    resolution: int | None = None,
    conditioning: str | None = None,
    seed: int = 0,
) -> GeneratorModel:
    """The training record for this manifest and config: an unfinished one is resumed, not duplicated."""
    from generator.conditioning import conditioning_spec
    from generator.ml.features import FeatureConfig

    source = manifest_source_resolve(manifest_ref)
    try:
        spec = conditioning_spec(conditioning or conf.get("GENERATOR_CONDITIONING"))
    except ValueError as exc:
        raise ApplicationError(str(exc)) from exc
    run = run_config_from_settings(steps=steps, resolution=resolution, seed=seed)
    try:
        # refused before training starts, not when the attribution pass reaches it after the whole run
        FeatureConfig(output=run["feature_output"])
    except ValueError as exc:
        raise ApplicationError(f"GENERATOR_FEATURE_OUTPUT is {run['feature_output']!r}: {exc}") from exc
    config = {"run": run, "conditioning": spec}
    digest = hashlib.sha256(json.dumps([source.content_hash, config], sort_keys=True).encode()).hexdigest()[
        :12
    ]
    with transaction.atomic():
        existing = (
            GeneratorModel.objects.select_for_update()
            .filter(status=GeneratorModel.Status.TRAINING, config__digest=digest)
            .first()
        )
        if existing is not None:
            return existing
        model = GeneratorModel.objects.create(
            version=f"gen-{timezone.now():%Y%m%d%H%M%S}-{digest}",
            manifest_build_id=source.build_id,
            manifest_hash=source.content_hash,
            manifest_path=str(source.folder),
            config={**config, "digest": digest},
        )
        model.run_dir = str(conf.generator_dir() / f"{digest}")
        model.save(update_fields=["run_dir"])
    return model


JOB, TRAIN, ATTRIBUTION = "generator_model", "generator_train", "generator_attribution"


def job_key(model_id: int) -> str:
    return leases.job_key(JOB, model_id)


def generator_model_plan(*, model: GeneratorModel, run_here: bool) -> None:
    """Two leases: the training run, then the attribution pass (which starts once training is done). run_here:
    this process runs both (the command line); otherwise they are sent to the workers."""
    units = [
        leases.Unit(TRAIN, str(model.pk), "generator.tasks.generator_train_task", [model.pk]),
        leases.Unit(
            ATTRIBUTION, str(model.pk), "generator.tasks.generator_attribution_task", [model.pk], True
        ),
    ]
    leases.leases_plan(job=job_key(model.pk), units=units, run_here=run_here)
    # a run asked for again (more steps, or after a failure) runs both steps again: each resumes or redoes
    # idempotently from what is on disk
    leases.leases_job_reopen(job=job_key(model.pk), run_here=run_here, done_too=True)
    if not run_here:
        leases.leases_dispatch(job=job_key(model.pk))


def generator_model_train(*, model: GeneratorModel, progress: bool = False) -> GeneratorModel:
    """Train (or resume) the model's run, precompute attribution, and mark it ready, in this process. Safe to
    run twice."""
    if model.status == GeneratorModel.Status.READY:
        return model
    holder = leases.holder_name(None)
    generator_model_plan(model=model, run_here=True)
    for step in (generator_train_step, generator_attribution_step):
        if not step(model=model, holder=holder, progress=progress):
            raise ApplicationError(f"{model.version} is being trained by a worker: its units say which one.")
    model.refresh_from_db()
    return model


def _training_inputs(model: GeneratorModel, progress: bool):
    from generator.training import RunConfig, prepare_data

    run_dir = Path(model.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    examples = _with_contributor_ids(manifest_read(Path(model.manifest_path)))
    if not examples:
        raise ApplicationError("the manifest has no training images with local pixels")
    run_conf = RunConfig.from_dict(model.config["run"])
    data = prepare_data(run_dir, examples, run_conf.resolution, model.config["conditioning"], progress)
    return run_dir, examples, run_conf, data


def generator_train_step(*, model: GeneratorModel, holder: str, progress: bool = False) -> bool:
    """The training run under its lease (resuming from its checkpoint). False when a live worker holds it."""
    from generator.training import train

    with leases.lease_hold(kind=TRAIN, unit=str(model.pk), holder=holder) as held:
        if held is None:
            return Lease.objects.filter(kind=TRAIN, unit=str(model.pk), state="done").exists()
        run_dir, _, run_conf, data = _training_inputs(model, progress)
        figures = train(run_dir, data, run_conf, model.config["conditioning"], progress, lost=held.lost)
        with transaction.atomic():
            leases.lease_complete(held)
            locked = GeneratorModel.objects.select_for_update().get(pk=model.pk)
            locked.steps_done = figures["steps_done"]
            locked.config = {**locked.config, "figures": figures}
            locked.save(update_fields=["steps_done", "config"])
    return True


def generator_attribution_step(*, model: GeneratorModel, holder: str, progress: bool = False) -> bool:
    """The attribution pass under its lease, then the model is ready. False when a live worker holds it."""
    from generator.training import ATTRIBUTION as ATTRIBUTION_FILE
    from generator.training import CHECKPOINT, build_attribution

    with leases.lease_hold(kind=ATTRIBUTION, unit=str(model.pk), holder=holder) as held:
        if held is None:
            return Lease.objects.filter(kind=ATTRIBUTION, unit=str(model.pk), state="done").exists()
        model.refresh_from_db()
        run_dir, examples, run_conf, data = _training_inputs(model, progress)
        figures = model.config.get("figures", {}) | build_attribution(
            run_dir, data, run_conf, model.config["conditioning"], progress
        )
        kept = [examples[i] for i in data["kept"]]
        _model_ready(
            model,
            kept,
            [str(n) for n in data["names"]],
            figures,
            figures.get("train_seconds", 0) + figures["feature_seconds"],
            checkpoint=run_dir / CHECKPOINT,
            attribution=run_dir / ATTRIBUTION_FILE,
            held=held,
        )
    return True


def generator_model_fail(*, model_id: int, error: str) -> None:
    GeneratorModel.objects.filter(pk=model_id, status=GeneratorModel.Status.TRAINING).update(
        status=GeneratorModel.Status.FAILED, error=error[:5000]
    )
    leases.leases_job_fail(job=job_key(model_id), error=error)


def _model_ready(model, kept, names, figures, seconds, *, checkpoint, attribution, held: leases.Held) -> None:
    works: dict[str, int] = {}
    ids: dict[str, int | None] = {}
    for ex in kept:
        works[ex.contributor] = works.get(ex.contributor, 0) + 1
        ids[ex.contributor] = ex.contributor_id
    with transaction.atomic():
        leases.lease_complete(held)
        locked = GeneratorModel.objects.select_for_update().get(pk=model.pk)
        locked.training_asset_ids = sorted({e.asset_id for e in kept if e.asset_id is not None})
        locked.training_contributors = [
            {"label": n, "contributor_id": ids.get(n), "works": works.get(n, 0)} for n in names
        ]
        locked.checkpoint_path, locked.attribution_path = str(checkpoint), str(attribution)
        locked.steps_done = figures["steps_done"]
        locked.training_seconds = seconds
        locked.config = {**locked.config, "figures": figures}
        locked.trained_at = timezone.now()
        # an opt-out that landed while it trained, or a manifest older than an opt-out, still counts
        opted = _actively_opted_out(locked.training_asset_ids)
        if opted and not locked.stale_at:
            locked.stale_at = timezone.now()
            locked.stale_reason = f"{len(opted)} training work(s) have an active opt-out (asset {min(opted)})"
        locked.status = GeneratorModel.Status.STALE if locked.stale_at else GeneratorModel.Status.READY
        locked.save()
    model.refresh_from_db()


def _actively_opted_out(asset_ids: list[int]) -> set[int]:
    return set(asset_ids) & set(active_optout_owners())


# --- staleness ------------------------------------------------------------------------------------------------


def generator_models_mark_stale(*, asset_ids: list[int], optout_id: int | None) -> int:
    """Every model trained on any of these assets becomes stale. Returns how many changed."""
    wanted = set(asset_ids)
    changed = 0
    with transaction.atomic():
        models = GeneratorModel.objects.select_for_update().exclude(status=GeneratorModel.Status.FAILED)
        for model in models.filter(stale_at__isnull=True):
            hit = wanted.intersection(model.training_asset_ids)
            if not hit:
                continue
            model.stale_at = timezone.now()
            model.stale_optout_id = optout_id
            model.stale_reason = (
                f"opt-out {optout_id} became active for {len(hit)} training work(s) "
                f"(asset {min(hit)}{'...' if len(hit) > 1 else ''})"
            )
            if model.status == GeneratorModel.Status.READY:
                model.status = GeneratorModel.Status.STALE
            model.save(update_fields=["stale_at", "stale_optout_id", "stale_reason", "status", "updated_at"])
            changed += 1
    return changed


# --- generation -----------------------------------------------------------------------------------------------


def _usable_model(model: GeneratorModel | None, *, user, override_stale: bool) -> GeneratorModel:
    from generator.selectors import generator_model_current

    model = model or generator_model_current()
    if model is None:
        raise ApplicationError(
            "no trained generator yet: run `manage.py train_generator --manifest latest`", status_code=409
        )
    if model.status == GeneratorModel.Status.STALE:
        if not override_stale:
            raise ApplicationError(
                f"generator {model.version} is stale: {model.stale_reason}. Retrain on the latest clean manifest "
                "(`manage.py train_generator --manifest latest`); an operator may override.",
                extra={
                    "model": model.version,
                    "stale_at": model.stale_at.isoformat() if model.stale_at else None,
                },
                status_code=409,
            )
        if user is not None and not is_operator(user):
            raise ApplicationError("only an operator may generate with a stale model", status_code=403)
    elif model.status != GeneratorModel.Status.READY:
        raise ApplicationError(f"generator {model.version} is {model.status}, not ready", status_code=409)
    return model


def generation_seed(seed: int | None) -> int:
    """The seed asked for, else a fresh random one: the image is reproducible from the seed it records."""
    return seed if seed is not None else secrets.randbits(32)


def generated_images_create(
    *, prompt: str, n: int = 1, seed: int | None = None, user, override_stale: bool = False
) -> list[GeneratedImage]:
    """`n` images from consecutive seeds, under the request rules every entry point shares: at most
    GENERATOR_MAX_IMAGES_PER_REQUEST per request, and only an operator (staff) may override a stale model."""
    limit = conf.get("GENERATOR_MAX_IMAGES_PER_REQUEST")
    if n > limit:
        raise ApplicationError(f"at most {limit} images per request")
    if override_stale and not is_operator(user):
        raise ApplicationError("only an operator (staff) may override a stale model", status_code=403)
    first = generation_seed(seed)
    return [
        generated_image_create(prompt=prompt, seed=first + i, user=user, override_stale=override_stale)
        for i in range(n)
    ]


def generated_image_create(
    *,
    prompt: str,
    seed: int,
    user=None,
    model: GeneratorModel | None = None,
    override_stale: bool = False,
) -> GeneratedImage:
    """Sample one image, store it with model, seed and prompt, and write both ledger rows."""
    from generator.runtime import loaded_generator

    prompt = prompt.strip()
    if not prompt:
        raise ApplicationError("the prompt is empty")
    model = _usable_model(model, user=user, override_stale=override_stale)
    t0 = time.perf_counter()
    run = model.config["run"]
    gen = loaded_generator(
        model.version,
        model.run_dir,
        json.dumps(model.config["conditioning"]),
        run["resolution"],
        conf.get("GENERATOR_SAMPLING_STEPS"),
        conf.get("GENERATOR_GUIDANCE"),
        conf.get("GENERATOR_SIMILARITY_TOP_K"),
    )
    try:
        sample = gen.sample(prompt, seed)
    except ValueError as exc:  # e.g. conditioned in the space of a default model rebuilt since
        raise ApplicationError(
            f"generator {model.version} cannot read prompts here ({exc}): retrain it", status_code=409
        ) from exc
    png = _png_bytes(sample.pixels)
    with transaction.atomic():
        image = GeneratedImage(
            model=model,
            prompt=prompt,
            seed=seed,
            resolution=run["resolution"],
            created_by=user if user is not None and user.is_authenticated else None,
            override_stale=override_stale and model.status == GeneratorModel.Status.STALE,
        )
        image.image.save(f"{model.version}-{seed}.png", ContentFile(png), save=False)
        image.seconds = time.perf_counter() - t0
        image.save()
        _ledger_write(image, model, sample)
    return image


def _ledger_write(image: GeneratedImage, model: GeneratorModel, sample) -> None:
    from generator.ml.attribution import (
        METHOD_VERSION_SIMILARITY,
        shares_from_scores,
        softmax_shares,
    )

    top_k = conf.get("GENERATOR_SHARES_TOP_K")
    rows = [
        (
            AttributionRecord.Method.GRADIENT,
            sample.gradient_method_version,
            sample.gradient_scores,
            shares_from_scores(sample.gradient_scores, sample.names, top_k=top_k),
        ),
        (
            AttributionRecord.Method.SIMILARITY,
            METHOD_VERSION_SIMILARITY,
            sample.similarity_scores,
            softmax_shares(
                sample.similarity_scores,
                sample.names,
                top_k=top_k,
                temperature=conf.get("GENERATOR_SIMILARITY_TEMPERATURE"),
            ),
        ),
    ]
    AttributionRecord.objects.bulk_create(
        [
            AttributionRecord(
                image=image,
                model=model,
                method=method,
                method_version=version,
                shares=shares,
                raw_scores={n: float(s) for n, s in zip(sample.names, scores, strict=True)},
            )
            for method, version, scores, shares in rows
        ]
    )


def _png_bytes(pixels) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()
