"""The torchvision shim, checked in a fresh interpreter: another test may already have imported torchvision."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
from embeddings.encoders.torchvision_compat import ensure_torchvision_importable
first = ensure_torchvision_importable()
second = ensure_torchvision_importable()
assert first == second, (first, second)
import open_clip, timm, torchvision
from PIL import Image
from torchvision import transforms as T
pipeline = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                      T.Normalize([0.5] * 3, [0.5] * 3)])
x = pipeline(Image.new("RGB", (320, 200), (255, 0, 0)))
assert tuple(x.shape) == (3, 224, 224), x.shape
assert abs(float(x[0].mean()) - 1.0) < 1e-6 and abs(float(x[1].mean()) + 1.0) < 1e-6
print("ok", first)
"""


def test_open_clip_timm_and_torchvision_transforms_work_after_the_shim():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2] == "ok"
    assert done.stdout.split()[-1] in {"native", "compiled", "declared"}


def test_the_shim_is_idempotent_in_process():
    from embeddings.encoders.torchvision_compat import ensure_torchvision_importable

    assert ensure_torchvision_importable() == ensure_torchvision_importable()
    import torchvision  # noqa: F401
