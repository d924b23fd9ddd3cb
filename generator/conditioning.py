"""Prompt -> conditioning vector. Keywords (a hashed bag, learned by the UNet's first layer) or the default model's
text embedding. The kind is recorded in the model's config so generation encodes prompts the way training did."""

from __future__ import annotations

import numpy as np

KEYWORD_DIM = 256


def conditioning_spec(kind: str) -> dict:
    if kind == "none":
        return {"kind": "none", "dim": 0}
    if kind == "keywords":
        return {"kind": "keywords", "dim": KEYWORD_DIM}
    if kind == "text":
        from embeddings.encoder import get_encoder

        space = get_encoder().space
        return {"kind": "text", "dim": int(space.dim), "space": space.id}
    raise ValueError(f"unknown conditioning {kind!r}: use keywords, text or none")


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
