"""No Docker engine runs here, so the deployment files are checked for what can be checked without one: the
compose file parses, every service is there with a health check, and the commands point at real code."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()


def test_compose_has_web_worker_beat_postgres_and_redis_with_health_checks():
    services = COMPOSE["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "migrate"} <= set(services)
    for name in ("web", "worker", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name


def test_app_services_share_media_index_manifest_and_model_volumes():
    mounts = {volume.split(":")[1] for volume in COMPOSE["services"]["web"]["volumes"]}
    assert mounts == {"/data/media", "/data/index", "/data/manifests", "/data/models"}
    assert COMPOSE["services"]["worker"]["volumes"] == COMPOSE["services"]["web"]["volumes"]
    assert {"media", "indexes", "manifests", "models", "pgdata", "redisdata"} <= set(COMPOSE["volumes"])


def test_compose_environment_names_settings_that_exist():
    settings_text = "".join(p.read_text() for p in (ROOT / "config" / "settings").glob("*.py"))
    for name in COMPOSE["services"]["web"]["environment"]:
        if name != "DJANGO_SETTINGS_MODULE":
            assert f'"{name}"' in settings_text, f"{name} is not read by the settings"


def test_commands_point_at_real_modules():
    assert (ROOT / "config" / "wsgi.py").exists() and (ROOT / "config" / "celery.py").exists()
    assert "config.wsgi" in DOCKERFILE
    assert COMPOSE["services"]["worker"]["command"][:3] == ["celery", "-A", "config"]
    assert COMPOSE["services"]["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]


def test_dockerfile_installs_with_the_torch_constraint():
    installs = re.findall(r"pip install[^\n]*", DOCKERFILE)
    assert installs and all("-c constraints.txt" in line for line in installs)
    for copied in re.findall(r"^COPY ([^.\n][^\n]*) \./$", DOCKERFILE, flags=re.MULTILINE):
        for name in copied.split():
            assert (ROOT / name).exists(), name
