"""Local development and the `make demo` site: SQLite, the filesystem broker, a development secret."""

from config.settings.base import *  # noqa: F403
from config.settings.base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-secret-do-not-deploy")
