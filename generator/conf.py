"""The generator's settings with their defaults (config/settings/base.py may override each from the environment)."""

from pathlib import Path

from django.conf import settings

from generator.ml.features import FeatureConfig

DEFAULTS = {
    "GENERATOR_CONDITIONING": "auto",  # auto | text (default model's text embedding) | keywords | none
    "GENERATOR_RESOLUTION": 32,
    "GENERATOR_STEPS": 2000,
    "GENERATOR_BATCH_SIZE": 32,
    "GENERATOR_CHANNELS": (
        32,
        48,
        64,
    ),  # UNet widths per level (docs/generator.md: a larger recipe for a GPU)
    "GENERATOR_DEVICE": "cpu",
    "GENERATOR_SAVE_EVERY": 200,
    "GENERATOR_SAMPLING_STEPS": 50,
    "GENERATOR_GUIDANCE": 5.0,  # chosen on validation prompts by benchmarks/generation_quality.py
    # the attribution recipe of a new model (generator.ml.features.FeatureConfig says why these)
    "GENERATOR_PROJ_DIM": FeatureConfig.proj_dim,
    "GENERATOR_FEATURE_TIMESTEPS": FeatureConfig.timesteps,
    "GENERATOR_FEATURE_NOISE_DRAWS": FeatureConfig.noise_draws,
    "GENERATOR_FEATURE_NORMALISE": FeatureConfig.normalise,
    "GENERATOR_FEATURE_OUTPUT": FeatureConfig.output,
    "GENERATOR_LAMBDA_REL": FeatureConfig.lambda_rel,
    "GENERATOR_SHARES_TOP_K": 5,
    "GENERATOR_SIMILARITY_TOP_K": 5,
    "GENERATOR_SIMILARITY_TEMPERATURE": 0.01,
    "GENERATOR_THREADS": 2,
    "GENERATOR_MAX_IMAGES_PER_REQUEST": 4,
}


def get(name: str):
    """The setting, or its default here where settings leave it unset (None: no environment variable gave it)."""
    value = getattr(settings, name, None)
    return DEFAULTS[name] if value is None else value


def generator_dir() -> Path:
    return Path(getattr(settings, "GENERATOR_DIR", Path(settings.DATA_DIR) / "generator"))
