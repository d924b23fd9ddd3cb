"""The attribution feature recipe (no torch here: settings, training configs and the ledger read it).

Its defaults are the one source for a new model's recipe: generator.conf, the training run's config and the
featurizers (generator.ml.attribution) all take them from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# The per-probe output functions generator.ml.attribution.OUTPUTS implements (its module docstring says why
# main-effect).
OUTPUT_NAMES = ("main-effect", "vnorm")


@dataclass
class FeatureConfig:
    proj_dim: int = 2048
    # The recipe benchmarks/attribution_lds.py measures (docs/generator.md has its figures): 10 timesteps x 1 noise
    # draw (more timesteps or draws scored the same within one standard error, at twice the training-time feature
    # pass and twice the per-image latency), unit-length features (every image weighs the same in the solve and the
    # score); normalise and lambda were chosen on validation images.
    timesteps: int = 10
    noise_draws: int = 1
    normalise: bool = True
    # The output function: main-effect scored above v-norm on the benchmark. Artifacts that record no output used
    # "vnorm" (generator.runtime reads them so).
    output: str = "main-effect"
    seed: int = 1234
    lambda_rel: float = 10.0  # lambda = lambda_rel * mean diag(Phi^T Phi); chosen on validation images

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_NAMES:
            raise ValueError(f"unknown attribution output {self.output!r}; one of {sorted(OUTPUT_NAMES)}")

    def to_dict(self) -> dict:
        return asdict(self)

    def method_version(self) -> str:
        """The ledger's version label, read from the recipe a model's features were made with (models trained
        under an older default keep their own recipe, so the label must come from the model, not the settings)."""
        kind = "unit" if self.normalise else "raw"
        output = self.output.replace("-", "")
        return f"dtrak-{output}-countsketch{self.proj_dim}-t{self.timesteps}d{self.noise_draws}-{kind}"
