"""A trained generator loaded for use: sample one image for a prompt and score it against every contributor.

Loaded lazily and cached per version (a worker keeps it in memory); heavy imports stay inside functions."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator.conditioning import encode_prompts
from generator.training import ATTRIBUTION, DATA, load_unet


@dataclass
class Sample:
    pixels: np.ndarray  # (R, R, 3) uint8
    gradient_scores: np.ndarray  # (contributors,)
    similarity_scores: np.ndarray  # (contributors,)
    names: list[str]
    gradient_method_version: str


class LoadedGenerator:
    def __init__(
        self,
        run_dir: Path,
        spec: dict,
        resolution: int,
        sampling_steps: int,
        guidance: float,
        similarity_top_k: int,
    ):
        from generator.ml.attribution import GradientFeaturizer, GramFeaturizer
        from generator.ml.features import FeatureConfig

        self.spec, self.resolution = spec, resolution
        self.sampling_steps, self.guidance, self.top_k = sampling_steps, guidance, similarity_top_k
        self.unet = load_unet(run_dir)
        with np.load(run_dir / ATTRIBUTION, allow_pickle=False) as art:
            self.vectors = art["vectors"]
            self.names = [str(n) for n in art["names"]]
            self.sim_features = art["sim_features"].astype(np.float32)
            self.sim_labels = art["sim_labels"]
            # artifacts written before the normalise and output options existed used raw v-norm features
            legacy = {"normalise": False, "output": "vnorm"}
            fconf = FeatureConfig(**{**legacy, **json.loads(str(art["feature_config"]))})
        self.featurizer = GradientFeaturizer(self.unet, fconf, resolution)
        self.gradient_method_version = fconf.method_version()
        self.gram = GramFeaturizer()
        self.conditions = None
        if spec["kind"] == "image":  # a prompt is read through the training works' conditions
            with np.load(run_dir / DATA, allow_pickle=False) as data:
                self.conditions = data["conds"]

    def encode(self, prompts: list[str]) -> np.ndarray | None:
        """The conditioning of each prompt, as this model was trained to read it."""
        return encode_prompts(prompts, self.spec, self.conditions)

    def draw(self, prompt: str, seed: int):
        """The image for (prompt, seed) as stored (quantised to 8 bits, (R, R, 3) uint8) and its conditioning."""
        import torch

        from generator.ml.diffusion import ddim_sample, to_uint8

        cond_np = self.encode([prompt])
        cond = torch.from_numpy(cond_np) if cond_np is not None else None
        x = ddim_sample(
            self.unet,
            n=1,
            resolution=self.resolution,
            seed=seed,
            cond=cond,
            steps=self.sampling_steps,
            guidance=self.guidance,
        )
        return to_uint8(x)[0].numpy(), cond

    def sample(self, prompt: str, seed: int) -> Sample:
        import torch

        from generator.ml.attribution import similarity_scores

        pixels, cond = self.draw(prompt, seed)
        # the image as stored is the one attributed
        x_q = torch.from_numpy(pixels).permute(2, 0, 1).float()[None] / 127.5 - 1
        phi = self.featurizer(x_q[0], None if cond is None else cond[0]).numpy()
        sim = similarity_scores(
            self.gram(x_q).numpy(), self.sim_features, self.sim_labels, len(self.names), self.top_k
        )[0]
        return Sample(pixels, phi @ self.vectors, sim, self.names, self.gradient_method_version)


@functools.lru_cache(maxsize=2)
def loaded_generator(
    version: str,
    run_dir: str,
    spec_json: str,
    resolution: int,
    sampling_steps: int,
    guidance: float,
    similarity_top_k: int,
) -> LoadedGenerator:
    return LoadedGenerator(
        Path(run_dir), json.loads(spec_json), resolution, sampling_steps, guidance, similarity_top_k
    )
