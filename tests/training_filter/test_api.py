"""Manifest API: operators create builds; any authenticated account (session or token) lists published builds,
downloads their files (never outside the build folder) and diffs them; anonymous callers get nothing."""

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.utils import timezone
from knox.models import AuthToken

from core.exceptions import ApplicationError
from tests.core.factories import OperatorFactory
from tests.training_filter.conftest import FakeRegistryRow, write_manifest
from tests.training_filter.factories import ManifestBuildFactory
from tests.training_filter.test_builds import ROWS, run_build
from training_filter.models import ManifestBuild

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(manifest_dir, fake_registry, tmp_path) -> ManifestBuild:
    fake_registry.append(FakeRegistryRow("domain", "blocked.net", "site", "domain", 1))
    return run_build(write_manifest(tmp_path / "in.parquet", ROWS), timezone.now())


@pytest.fixture
def operator():
    return OperatorFactory(username="op")


@pytest.fixture
def token_holder(api_client):
    user = User.objects.create_user("trainer", password="pw")
    _row, token = AuthToken.objects.create(user=user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return api_client


def test_only_an_operator_can_start_a_build(
    api_client, operator, token_holder, manifest_dir, tmp_path, settings
):
    settings.MANIFEST_INPUT_ROOTS = [str(tmp_path)]
    path = str(write_manifest(tmp_path / "m.parquet", ROWS))
    assert token_holder.post("/api/manifests/builds/", {"input_path": path}).status_code == 403
    api_client.credentials()
    assert api_client.post("/api/manifests/builds/", {"input_path": path}).status_code in (401, 403)
    api_client.force_authenticate(operator)
    response = api_client.post(
        "/api/manifests/builds/", {"input_path": path, "as_of": "2030-01-01T00:00:00Z"}
    )
    assert response.status_code == 202 and response.json()["status"] == "pending"


def test_a_bad_request_gets_a_readable_message(api_client, operator):
    api_client.force_authenticate(operator)
    response = api_client.post("/api/manifests/builds/", {"collection": "nope"})
    assert response.status_code == 404 and "nope" in response.json()["message"]


def test_token_holders_list_published_builds_with_progress_and_stats(token_holder, published):
    ManifestBuildFactory()  # pending
    body = token_holder.get("/api/manifests/builds/").json()
    assert [b["id"] for b in body["results"]] == [published.pk]
    detail = token_holder.get(f"/api/manifests/builds/{published.pk}/").json()
    assert detail["progress"] == 1.0 and detail["removed"] == {"domain": 1}


def test_anonymous_callers_see_no_builds(api_client, published):
    assert api_client.get("/api/manifests/builds/").status_code == 401
    assert api_client.get(f"/api/manifests/builds/{published.pk}/files/manifest.json/").status_code == 401


def test_a_file_downloads_as_a_stream(token_holder, published):
    names = token_holder.get(f"/api/manifests/builds/{published.pk}/files/").json()["files"]
    assert "manifest.json" in names and "data/part-00000.parquet" in names
    response = token_holder.get(f"/api/manifests/builds/{published.pk}/files/data/part-00000.parquet/")
    assert response.status_code == 200 and response.streaming
    body = b"".join(response.streaming_content)
    assert body == (Path(published.output_path) / "data" / "part-00000.parquet").read_bytes()


@pytest.mark.parametrize("name", ["../../../etc/passwd", "..%2F..%2Fsecret", "/etc/passwd", "data/../../x"])
def test_a_path_outside_the_build_is_refused(token_holder, published, name):
    response = token_holder.get(f"/api/manifests/builds/{published.pk}/files/{name}/")
    assert response.status_code == 404


def test_diff_api_and_command_list_added_and_removed_keys(
    token_holder, published, fake_registry, tmp_path, capsys
):
    fake_registry.clear()
    newer = run_build(write_manifest(tmp_path / "in.parquet", ROWS), timezone.now())
    body = token_holder.get(f"/api/manifests/diff/?old={published.pk}&new={newer.pk}").json()
    assert body["added"] == ["k3"] and body["removed"] == []
    call_command("manifest_diff", str(published.pk), str(newer.pk))
    assert "+ k3" in capsys.readouterr().out


def test_an_operator_cannot_make_the_server_read_a_folder_outside_the_input_roots(
    api_client, operator, manifest_dir, tmp_path, settings
):
    inputs, elsewhere = tmp_path / "inputs", tmp_path / "elsewhere"
    inputs.mkdir()
    secret = str(write_manifest(elsewhere / "m.parquet", ROWS))
    (inputs / "link").symlink_to(elsewhere, target_is_directory=True)
    settings.MANIFEST_INPUT_ROOTS = [str(inputs), "s3://manifests/shared"]
    api_client.force_authenticate(operator)
    outside = [
        secret,
        f"file://{secret}",
        str(inputs / ".." / "elsewhere" / "m.parquet"),
        str(inputs / "link" / "m.parquet"),
        "s3://manifests/other/m.parquet",
        "s3://manifests/shared-not/m.parquet",
        "s3://manifests/shared/../other/m.parquet",
    ]
    for path in outside:
        response = api_client.post("/api/manifests/builds/", {"input_path": path})
        assert response.status_code == 400, path
        assert "input_path" in response.json()["extra"]["fields"]
    assert not ManifestBuild.objects.exists()
    inside = str(write_manifest(inputs / "m.parquet", ROWS))
    assert api_client.post("/api/manifests/builds/", {"input_path": inside}).status_code == 202


def registry_changing_while_read(*, as_of):
    raise ApplicationError("the opt-out registry changed while it was read; start the build again")


def test_a_command_build_that_cannot_read_the_registry_fails_and_says_why(manifest_dir, settings, tmp_path):
    settings.MANIFEST_REGISTRY_SOURCE = "tests.training_filter.test_api.registry_changing_while_read"
    path = write_manifest(tmp_path / "cli.parquet", ROWS)
    with pytest.raises(CommandError, match="changed while it was read"):
        call_command("build_manifest", "--input", str(path))
    build = ManifestBuild.objects.get()
    assert build.status == "failed" and "changed while it was read" in build.error


def test_build_manifest_command_builds_and_publishes(manifest_dir, fake_registry, tmp_path, capsys):
    path = write_manifest(tmp_path / "cli.parquet", ROWS)
    call_command("build_manifest", "--input", str(path), "--as-of", "2030-01-01T00:00:00+00:00")
    build = ManifestBuild.objects.get()
    assert build.status == "published" and build.trigger == "cli" and build.rows_in == len(ROWS)
    assert "published" in capsys.readouterr().out
