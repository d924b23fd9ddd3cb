"""The web process starts fast: no torch, faiss, open_clip, cv2 or pyarrow until a request needs them; production
settings refuse to start without a secret and pass Django's deployment checks."""

import os
import subprocess
import sys

HEAVY = ("torch", "faiss", "open_clip", "cv2", "timm", "transformers", "matplotlib", "pyarrow", "duckdb")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )


def test_web_process_imports_no_heavy_libraries():
    result = run_python(
        "import sys, django; django.setup();"
        "from django.urls import resolve; import config.urls, config.wsgi;"
        f"print([m for m in {HEAVY!r} if m in sys.modules])",
        DJANGO_SETTINGS_MODULE="config.settings.dev",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_web_process_takes_what_it_loaded_at_start_out_of_the_collectors_walk():
    result = run_python(
        "import gc, sys, config.wsgi; print(gc.get_freeze_count(), 'web.views' in sys.modules)",
        DJANGO_SETTINGS_MODULE="config.settings.dev",
    )
    assert result.returncode == 0, result.stderr
    frozen, views_loaded = result.stdout.split()
    assert int(frozen) > 50_000 and views_loaded == "True"


def test_production_settings_refuse_to_start_without_a_secret():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        capture_output=True,
        text=True,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings.prod"},
        timeout=120,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_production_settings_pass_check_deploy():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.prod",
            "DJANGO_SECRET_KEY": "x" * 30 + "a-long-random-production-secret-value-1234567890",
            "DJANGO_ALLOWED_HOSTS": "provenant.example.org",
        },
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "security.W" not in output, output
