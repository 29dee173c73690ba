#!/usr/bin/env bash
# Headless Chromium for the report tests (Debian's package). Nothing to stop afterwards.
# `.ci/run` takes the last line of stdout as a stop command: print none.
set -euo pipefail
exec 3>&1 1>&2
if ! command -v chromium >/dev/null 2>&1; then
    echo "[setup-chromium] installing chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version
