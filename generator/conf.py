"""The generator's settings with their defaults (config/settings/base.py may override each from the environment)."""

from pathlib import Path

from django.conf import settings

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
    "GENERATOR_GUIDANCE": 3.0,  # provisional: docs/generator.md says why, and how the benchmark will choose it
    "GENERATOR_PROJ_DIM": 2048,
    "GENERATOR_FEATURE_TIMESTEPS": 10,  # the LDS benchmark's recipe (generator.ml.attribution.FeatureConfig)
    "GENERATOR_FEATURE_NOISE_DRAWS": 1,
    "GENERATOR_FEATURE_NORMALISE": True,
    "GENERATOR_FEATURE_OUTPUT": "main-effect",  # or "vnorm" (D-TRAK's; generator.ml.attribution.OUTPUTS)
    "GENERATOR_LAMBDA_REL": 10.0,  # ridge lambda relative to mean diag(Phi^T Phi), chosen on validation images
    "GENERATOR_SHARES_TOP_K": 5,
    "GENERATOR_SIMILARITY_TOP_K": 5,
    "GENERATOR_SIMILARITY_TEMPERATURE": 0.01,
    "GENERATOR_THREADS": 2,
    "GENERATOR_MAX_IMAGES_PER_REQUEST": 4,
}


def get(name: str):
    return getattr(settings, name, DEFAULTS[name])


def generator_dir() -> Path:
    return Path(getattr(settings, "GENERATOR_DIR", Path(settings.DATA_DIR) / "generator"))
