"""The admin action queues a fresh build of the same input."""

import pytest
from django.contrib.auth.models import User

from tests.training_filter.factories import ManifestBuildFactory
from training_filter.models import ManifestBuild

pytestmark = pytest.mark.django_db


def test_admin_rebuild_action_queues_a_build_of_the_same_input(client, manifest_dir, tmp_path):
    operator = User.objects.create_superuser("root", "r@example.org", "pw")
    client.force_login(operator)
    path = tmp_path / "m.parquet"
    from tests.training_filter.conftest import write_manifest

    write_manifest(path, [{"key": "a", "url": "https://x.org/a.jpg"}])
    old = ManifestBuildFactory(input_ref=str(path))
    response = client.post(
        "/admin/training_filter/manifestbuild/", {"action": "rebuild_now", "_selected_action": [old.pk]}
    )
    assert response.status_code == 302
    new = ManifestBuild.objects.exclude(pk=old.pk).get()
    assert (new.input_ref, new.trigger, new.requested_by) == (str(path), "admin", operator)
