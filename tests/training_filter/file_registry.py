"""A registry source a separate worker process can read: rows from the JSON file named by
PROVENANT_TEST_REGISTRY_FILE (the shape of optout.registry.registry_rows)."""

import json
import os
from datetime import datetime

from tests.training_filter.conftest import FakeRegistryRow


def registry_rows(*, as_of: datetime):
    with open(os.environ["PROVENANT_TEST_REGISTRY_FILE"], encoding="utf-8") as fh:
        for row in json.load(fh):
            yield FakeRegistryRow(**row)
