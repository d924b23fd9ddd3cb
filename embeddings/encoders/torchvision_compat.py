"""Make `import torchvision` (and so open_clip and timm) work beside the CPU-only torch.

The registry's torchvision wheel is a CUDA build: its compiled `_C` extension does not load against the CPU
torch, and `torchvision/_meta_registrations.py` then dies on `register_fake("torchvision::nms")` because the
operator was never declared. Declaring the schemas of the operators it registers fakes for is enough: torchvision
imports, and its transforms (all open_clip needs) work; only the compiled detection ops (nms, roi_align...) stay
unavailable. Call `ensure_torchvision_importable()` before anything imports torchvision, open_clip or timm.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

# Schemas as torchvision's C++ code declares them; only those it registers Python fakes for are required.
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

_state: dict[str, object] = {}  # keeps the Library alive: dropping it would unregister the schemas


def _has_op(name: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def _load_compiled_ops() -> bool:
    """Load torchvision's own `_C` when it matches this torch (a CPU torchvision): the real ops, nothing faked."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for folder in spec.submodule_search_locations:
        for lib in sorted(Path(folder).glob("_C*.so")) + sorted(Path(folder).glob("_C*.pyd")):
            try:
                torch.ops.load_library(str(lib))
                return True
            except (OSError, RuntimeError) as exc:
                logger.debug("torchvision's compiled ops do not load (%s): declaring schemas instead", exc)
    return False


def ensure_torchvision_importable() -> str:
    """Idempotent. Returns how torchvision's operators are provided: 'native', 'compiled' or 'declared'."""
    if "mode" in _state:
        return str(_state["mode"])
    import torch

    if "torchvision" in sys.modules or all(_has_op(name) for name in _SCHEMAS):
        mode = "native"
    elif _load_compiled_ops() and all(_has_op(name) for name in _SCHEMAS):
        mode = "compiled"
    else:
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for name, schema in _SCHEMAS.items():
            if not _has_op(name):
                lib.define(schema)
        _state["library"] = lib
        mode = "declared"
    _state["mode"] = mode
    return mode
