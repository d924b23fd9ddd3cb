#!/usr/bin/env bash
# Third-party tools whose own output the tests read: exiftool writes the XMP packets of the embedded-signal tests.
set -euo pipefail
if ! command -v exiftool >/dev/null; then
  echo "==> installing Debian's exiftool"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libimage-exiftool-perl
fi
