#!/usr/bin/env bash
# Headless Chromium for the report tests (Debian's package). Nothing to stop afterwards.
# `.ci/run` takes the last line of stdout as a stop command: print none.
set -euo pipefail
exec 3>&1 1>&2
# shellcheck source=.ci/apt-ensure.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh"
apt_ensure --no-install-recommends chromium fonts-dejavu-core
chromium --version
