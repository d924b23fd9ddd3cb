"""The image tower in ONNX Runtime: PyTorch's features, in about two thirds of the time on a CPU.

PyTorch's eager forward spends much of a small batch between its kernels; ONNX Runtime runs the same graph with
fused, pre-planned kernels. The tower is exported once per model, weights and PyTorch version (torch.export), kept
as a file under the models folder (written to a *.part file and renamed, so that workers starting together never
read half of one), and checked against the PyTorch tower on a probe batch before it is used. Where the export or
the check fails, the encoder keeps PyTorch and logs why: the features are what matter, not the runtime.
"""

from __future__ import annotations

import logging
import os
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

EXPORT_VERSION = 1  # raise when the export changes, so that no older file is loaded


def image_tower(
    visual: Any, probe: np.ndarray, *, folder: Path, name: str, threads: int
) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function from preprocessed (n, 3, H, W) float32 pixels to the tower's (n, dim) features, or None when the
    tower cannot run in ONNX Runtime with PyTorch's features. `probe` is a preprocessed batch of two; `name` says
    which model and weights (the file is named by it)."""
    try:
        path = _exported(visual, probe, file_path(folder, name))
        session = _session(path, threads)
    except Exception as exc:  # export and load raise many types (unsupported operators, protobuf, disk)
        logger.warning(
            "image tower stays in PyTorch: ONNX export or load failed (%s: %s)", type(exc).__name__, exc
        )
        return None
    input_name = session.get_inputs()[0].name

    def run(pixels: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: np.ascontiguousarray(pixels, dtype=np.float32)})[0]

    if not _same_features(visual, probe, run):
        logger.warning(
            "image tower stays in PyTorch: ONNX Runtime's features differ from PyTorch's on the probe"
        )
        return None
    return run


def file_path(folder: Path, name: str) -> Path:
    """Where the tower named `name` is kept: a new PyTorch (another exporter) or export version makes a new file."""
    import torch

    return folder / f"{name}-torch{torch.__version__.replace('+', '-')}-v{EXPORT_VERSION}.onnx"


def _exported(visual: Any, probe: np.ndarray, path: Path) -> Path:
    """The tower's ONNX file, exported now unless an earlier process did (any batch size)."""
    if path.is_file():
        return path
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")  # a models folder may be shared by hosts
    try:
        with warnings.catch_warnings():
            # torch.export's own use of a deprecated pytree class: PyTorch's to fix, nothing a user can act on
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            torch.onnx.export(
                visual,
                (torch.from_numpy(np.ascontiguousarray(probe)),),
                str(part),
                input_names=["pixels"],
                output_names=["features"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return path


def _session(path: Path, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # its threads would otherwise spin after every run, on the core that the rest of a search needs next
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: its graph-optimisation notes are not the user's business
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _same_features(visual: Any, probe: np.ndarray, run: Callable[[np.ndarray], np.ndarray]) -> bool:
    import torch

    with torch.inference_mode():
        expected = visual(torch.from_numpy(np.ascontiguousarray(probe))).float().numpy()
    return bool(np.allclose(run(probe), expected, rtol=1e-3, atol=1e-4))
