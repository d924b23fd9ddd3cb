"""Tests of the benchmarks' own code (their measures and trainers), beside the benchmarks: the product's tests
(tests/) never import a benchmark. The benchmarks are scripts run from this folder's parent, so it goes on the path
as it does when one runs."""

import sys
from pathlib import Path

from tests.generator.conftest import one_torch_thread

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

__all__ = ["one_torch_thread"]
