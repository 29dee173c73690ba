# Sourced by the .ci/setup-*.sh scripts: install the Debian packages that are missing.
#   apt_ensure [--no-install-recommends] PACKAGE...
# Idempotent and quiet (progress on stderr); does nothing when all are installed.
apt_ensure() {
    local options=(-y -qq -o Dpkg::Options::=--force-confold) missing=() pkg
    if [ "${1:-}" = "--no-install-recommends" ]; then options+=("$1"); shift; fi
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        echo "[apt-ensure] already installed: $*" >&2
        return 0
    fi
    echo "[apt-ensure] installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install "${options[@]}" "${missing[@]}" >/dev/null
}
