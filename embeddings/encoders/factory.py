"""`get_encoder()` returns the configured encoder, built lazily on first use and cached per process, so the web
process never imports torch or open_clip unless a request needs an embedding. `CLIP_MODEL=fake` selects a
deterministic, dependency-free encoder for fast unit tests.
"""

from __future__ import annotations

import functools

from embeddings.encoders.space import Encoder


@functools.cache
def get_encoder() -> Encoder:
    from django.conf import settings

    if settings.CLIP_MODEL == "fake":
        from embeddings.encoders.fake import FakeEncoder

        return FakeEncoder()
    from embeddings.encoders.openclip import OpenClipEncoder

    return OpenClipEncoder(model_name=settings.CLIP_MODEL, pretrained=settings.CLIP_PRETRAINED)
