#!/usr/bin/env bash
# `make demo`: the whole site on embedded defaults (SQLite, the filesystem Celery broker, the offline default
# model) over Debian's openclipart collection. Every step is skipped when already done, so a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DJANGO_SETTINGS_MODULE=config.settings.dev
OPENCLIPART=${OPENCLIPART:-/usr/share/openclipart}
HOST=${DEMO_HOST:-127.0.0.1}
PORT=${DEMO_PORT:-8000}

$PY manage.py migrate --no-input -v0
$PY manage.py demo_operator --credentials var/demo-credentials.txt

echo "==> ingesting openclipart (about 7,450 works; a re-run skips what is in)"
$PY manage.py ingest "$OPENCLIPART/svg" --collection openclipart --raster-root "$OPENCLIPART/png" --show-errors 10

echo "==> the offline default model (built once, a few minutes on CPU)"
$PY manage.py build_default_model --collection openclipart --if-missing

echo "==> indexing hashes, keypoints and the embedding of every work (resumable)"
# The site needs only this whole-work index. Each work's six parts (which find crops) are queued for the Celery
# worker started below: it embeds them in batches while the site runs, and search uses them as they arrive
# (progress on the operator dashboard). A second run queues only what is missing.
$PY manage.py index --collection openclipart --parts background

echo "==> starting a Celery worker (the parts, in the background) and the web server"
mkdir -p var/log
# one task at a time: on a 2-core machine the other core stays with the site while the parts are embedded
.venv/bin/celery -A config worker --loglevel=INFO --pool=threads --concurrency=1 --beat --schedule var/celerybeat-schedule >var/log/celery-worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM
cat <<MSG

  Provenant is running at http://$HOST:$PORT/
    admin:   http://$HOST:$PORT/admin/    (log in with the demo operator below)
    API:     http://$HOST:$PORT/api/docs/
    $(cat var/demo-credentials.txt)
  Celery worker log: var/log/celery-worker.log      Stop with Ctrl-C.
  Parts of each work are still being embedded in the background: see "Indexing" on http://$HOST:$PORT/operator/
  Try: .venv/bin/python manage.py find_work $OPENCLIPART/png/animals/mammals/a_simple_pig_01.png --top 5 --json

MSG
exec $PY manage.py runserver "$HOST:$PORT" --noreload
