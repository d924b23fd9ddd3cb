"""The encoders and the offline default model: the embedding space and the encoder protocol (space), the factory
that picks the configured encoder (factory), a deterministic fake for tests (fake), open_clip (openclip), the
default model and its offline build (default_model, default_model_build), batched image decoding (batch_decode)
and the torchvision shim open_clip needs (torchvision_compat)."""
