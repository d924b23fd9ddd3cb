"""The project's Celery app with a short Redis visibility timeout, so a message held by a SIGKILLed worker is
delivered again within seconds (production keeps the default hour)."""

from config.celery import app

app.conf.broker_transport_options = {
    "visibility_timeout": 4,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

__all__ = ["app"]
