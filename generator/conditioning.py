"""Prompt -> conditioning vector. The default model's text embedding (what `auto` picks when that model is built:
prompts that mean the same land near each other, so a prompt never seen in training still steers the picture) or a
hashed bag of keywords (learned by the UNet's first layer; the fallback, since a word it never saw does nothing).
The kind is recorded in the model's config so generation encodes prompts the way training did."""

from __future__ import annotations

import logging

import numpy as np

from core.exceptions import ApplicationError

log = logging.getLogger(__name__)

KEYWORD_DIM = 256
KINDS = ("auto", "text", "keywords", "none")


def conditioning_spec(kind: str) -> dict:
    if kind == "none":
        return {"kind": "none", "dim": 0}
    if kind == "keywords":
        return {"kind": "keywords", "dim": KEYWORD_DIM}
    if kind == "text":
        from embeddings.encoder import get_encoder

        space = get_encoder().space
        return {"kind": "text", "dim": int(space.dim), "space": space.id}
    if kind == "auto":
        try:
            return conditioning_spec("text")
        except ApplicationError as exc:  # the encoder says what is missing (e.g. the default model not built)
            log.warning("conditioning on hashed keywords: the text embedding is unavailable (%s)", exc)
            return conditioning_spec("keywords")
    raise ValueError(f"unknown conditioning {kind!r}: use {', '.join(KINDS)}")


def encode_prompts(texts: list[str], spec: dict) -> np.ndarray | None:
    if spec["kind"] == "none":
        return None
    if spec["kind"] == "keywords":
        from generator.ml.attribution import hash_keywords

        return hash_keywords(texts, spec["dim"])
    from embeddings.encoder import get_encoder

    encoder = get_encoder()
    if encoder.space.id != spec.get("space"):
        raise ValueError(
            f"the model was trained in embedding space {spec.get('space')}, not {encoder.space.id}"
        )
    return np.asarray(encoder.encode_texts(texts), dtype=np.float32)
