#!/usr/bin/env bash
# Install (when absent) and start PostgreSQL and Redis on loopback, and create the test role and database.
# Idempotent: a second run only checks that both answer.
set -euo pipefail

PG_USER=${PG_USER:-provenant}
PG_PASSWORD=${PG_PASSWORD:-provenant}
PG_DB=${PG_DB:-provenant}
REDIS_PORT=${REDIS_PORT:-6379}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

pg_version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q "^$pg_version main"; then
  as_root pg_createcluster "$pg_version" main
fi
if ! pg_lsclusters -h | awk -v v="$pg_version" '$1==v && $2=="main" {print $4}' | grep -q online; then
  echo "==> starting PostgreSQL $pg_version"
  as_root pg_ctlcluster "$pg_version" main start
fi
for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
pg_isready -h 127.0.0.1 || { echo "PostgreSQL did not start" >&2; exit 1; }

psql_admin() { as_root su postgres -c "psql -v ON_ERROR_STOP=1 -qtAc \"$1\""; }
if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'")" != 1 ]; then
  psql_admin "CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname='$PG_DB'")" != 1 ]; then
  psql_admin "CREATE DATABASE $PG_DB OWNER $PG_USER"
fi

if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "==> starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --save "" --appendonly no
  for _ in $(seq 30); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -p "$REDIS_PORT" ping >/dev/null || { echo "Redis did not start" >&2; exit 1; }
echo "==> PostgreSQL and Redis are up on loopback"
