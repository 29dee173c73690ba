#!/usr/bin/env bash
# Podman for the container tests: install it, configure it under one project-owned folder, and
# build a base image from a minbase Debian rootfs.  `.ci/run` takes the LAST line of stdout as
# the command to run at exit, so everything else goes to stderr.
#
# Nothing global is touched: the configuration lives in $HERMESFLOW_PODMAN_DIR (default
# /var/tmp/hermesflow-podman, outside the checkout so CI's fresh clones share the cache) and is
# selected with CONTAINERS_CONF / CONTAINERS_STORAGE_CONF / CONTAINERS_REGISTRIES_CONF, which the
# tests set from the same folder (tests/test_containers_podman.py).
#
# Reruns are fast: apt is skipped when the packages are there, the debootstrapped rootfs is kept
# as a tarball, and the base image is imported only when the store does not have it.
set -euo pipefail
exec 3>&1 1>&2

PODMAN_DIR=${HERMESFLOW_PODMAN_DIR:-/var/tmp/hermesflow-podman}
BASE_IMAGE=${HERMESFLOW_BASE_IMAGE:-localhost/hermesflow-base:bookworm}
MIRROR=${HERMESFLOW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# Runtime state (locks, container state) must not outlive a reboot; /run is not a tmpfs on every
# machine, so the stale-state check below also looks at what is really mounted.
RUN_DIR=${HERMESFLOW_PODMAN_RUN_DIR:-/run/hermesflow-podman}

log() { printf '[setup-podman] %s\n' "$*" >&2; }
start=$(date +%s)

# -- 1. packages ---------------------------------------------------------------------------------
# shellcheck source=.ci/apt-ensure.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh"
apt_ensure podman runc debootstrap

# -- 2. configuration ----------------------------------------------------------------------------
mkdir -p "$PODMAN_DIR/storage" "$RUN_DIR"
# Rootful podman raises RLIMIT_NPROC (and NOFILE) to huge values unless told otherwise; without
# CAP_SYS_RESOURCE (as in this sandbox) runc then fails with "error setting rlimit type 6".
# Seen here: 32768 is the most runc may set, whatever `ulimit -Hu` says; 16384 is plenty (the
# limit counts one uid's processes, and root is exempt).
nproc_limit=16384
hard=$(ulimit -Hu)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$nproc_limit" ]; then nproc_limit=$hard; fi
cat >"$PODMAN_DIR/storage.conf" <<EOF
# Written by .ci/setup-podman.sh; selected with CONTAINERS_STORAGE_CONF.
[storage]
driver = "overlay"
graphroot = "$PODMAN_DIR/storage"
runroot = "$RUN_DIR/storage"
EOF
cat >"$PODMAN_DIR/containers.conf" <<EOF
# Written by .ci/setup-podman.sh; selected with CONTAINERS_CONF.
[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=$nproc_limit:$nproc_limit"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PODMAN_DIR/events.log"
tmp_dir = "$RUN_DIR/libpod"
EOF
# Fully qualified names only: never ask a registry to resolve a short name.
cat >"$PODMAN_DIR/registries.conf" <<EOF
# Written by .ci/setup-podman.sh; selected with CONTAINERS_REGISTRIES_CONF.
unqualified-search-registries = []
short-name-mode = "disabled"
EOF
export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
export CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf"
export CONTAINERS_REGISTRIES_CONF="$PODMAN_DIR/registries.conf"

# Left-over runtime state from before a reboot (nothing of ours mounted) confuses podman.
if ! grep -qF "$PODMAN_DIR/storage" /proc/mounts; then
    rm -rf "${RUN_DIR:?}/storage" "${RUN_DIR:?}/libpod"
fi

# -- 3. base image -------------------------------------------------------------------------------
rootfs_tar="$PODMAN_DIR/rootfs-$SUITE-minbase.tar"
if podman image exists "$BASE_IMAGE"; then
    log "base image $BASE_IMAGE already in the store"
else
    if [ ! -s "$rootfs_tar" ]; then
        log "debootstrap --variant=minbase $SUITE from $MIRROR"
        rootfs="$PODMAN_DIR/rootfs.tmp"
        rm -rf "$rootfs"
        debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >"$PODMAN_DIR/debootstrap.log" 2>&1 \
            || { tail -n 20 "$PODMAN_DIR/debootstrap.log"; exit 1; }
        # apt lists and caches are not needed inside the image.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -c . >"$rootfs_tar.tmp"
        mv "$rootfs_tar.tmp" "$rootfs_tar"
        rm -rf "$rootfs"
    else
        log "reusing cached rootfs $rootfs_tar"
    fi
    log "podman import -> $BASE_IMAGE"
    podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" <"$rootfs_tar" >/dev/null
fi

# -- 4. smoke test -------------------------------------------------------------------------------
podman run --rm "$BASE_IMAGE" /bin/true
log "ready in $(($(date +%s) - start)) s (config: $PODMAN_DIR)"

# Nothing keeps running; at exit remove any container a failed test left behind (images and the
# rootfs cache stay for the next run).
echo "CONTAINERS_CONF='$CONTAINERS_CONF' CONTAINERS_STORAGE_CONF='$CONTAINERS_STORAGE_CONF' CONTAINERS_REGISTRIES_CONF='$CONTAINERS_REGISTRIES_CONF' podman rm --all --force >/dev/null 2>&1 || true" >&3
