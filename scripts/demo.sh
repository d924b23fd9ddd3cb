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

echo "==> indexing hashes, keypoints, embeddings of every work and of its six parts (resumable)"
$PY manage.py index --collection openclipart

echo "==> starting a Celery worker and the web server"
mkdir -p var/log
.venv/bin/celery -A config worker --loglevel=INFO --pool=threads --concurrency=2 --beat --schedule var/celerybeat-schedule >var/log/celery-worker.log 2>&1 &
WORKER=$!
trap 'kill $WORKER 2>/dev/null || true' EXIT INT TERM
cat <<MSG

  Provenant is running at http://$HOST:$PORT/
    admin:   http://$HOST:$PORT/admin/    (log in with the demo operator below)
    API:     http://$HOST:$PORT/api/docs/
    $(cat var/demo-credentials.txt)
  Celery worker log: var/log/celery-worker.log      Stop with Ctrl-C.
  Try: .venv/bin/python manage.py find_work $OPENCLIPART/png/animals/mammals/a_simple_pig_01.png --top 5 --json

MSG
exec $PY manage.py runserver "$HOST:$PORT" --noreload
