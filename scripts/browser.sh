#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null; then
  echo "==> installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
# axe-core for the accessibility checks of the browser tests, from npm (pinned), into var/npm
AXE_VERSION=4.14.1
if [ ! -f var/npm/node_modules/axe-core/axe.min.js ] || ! grep -q "\"version\": \"$AXE_VERSION\"" var/npm/node_modules/axe-core/package.json; then
  echo "==> installing axe-core $AXE_VERSION from npm"
  command -v npm >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
  npm install --prefix var/npm --no-audit --no-fund --silent "axe-core@$AXE_VERSION"
fi
