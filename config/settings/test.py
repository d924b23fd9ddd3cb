"""Test settings: the database comes from DATABASE_URL (PostgreSQL in CI), Celery runs eagerly unless a test
starts a real worker."""

from config.settings.base import *  # noqa: F403
from config.settings.base import DATA_DIR, DATABASES, env

SECRET_KEY = "test-secret"
DEBUG = False
CELERY_TASK_ALWAYS_EAGER = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = DATA_DIR / "test-media"
PROVENANT_DATASET_IMAGES_DIR = DATA_DIR / "test-dataset-images"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
ALLOWED_HOSTS = ["*"]

# Several test runs may share one PostgreSQL server (developers, CI shards): PROVENANT_TEST_DB names the throwaway
# database of this run.
if env.str("PROVENANT_TEST_DB", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env.str("PROVENANT_TEST_DB")}

# Throttle counters must not leak between tests (or between runs through a shared Redis); the throttling tests
# switch them on for themselves.
PROVENANT_THROTTLE_ENABLED = False
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The audit log's key (prod reads it from the environment or a file kept away from the database).
PROVENANT_AUDIT_KEY = "test-audit-key-not-secret"
# Per-username lockout counts failures in the cache across tests; the lockout tests switch it on for themselves.
AXES_ENABLED = False
SILENCED_SYSTEM_CHECKS = ["axes.W001"]  # the per-process cache of the tests is fine for them
