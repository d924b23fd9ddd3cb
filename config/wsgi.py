import os

from django.core.wsgi import get_wsgi_application

from core.startup import settle_web_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
application = get_wsgi_application()
settle_web_process()
