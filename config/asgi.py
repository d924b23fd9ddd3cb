import os

from django.core.asgi import get_asgi_application

from core.startup import settle_web_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
application = get_asgi_application()
settle_web_process()
