#!/usr/bin/env bash
# Provision what the tests need on a fresh Debian 12 machine (run as root):
#   - a Docker engine from Debian's packages (docker.io), started if not running;
#   - compose v1 (Debian 12's `docker-compose`, Python);
#   - compose v2 as the CLI plugin, taken from Debian 13's `docker-compose` package;
#   - a newer engine beside it (Debian 13's docker.io 26.1.5, API 1.45) on its own socket,
#     /run/felhom-docker26/docker.sock, so that the stacks tests also run against the API
#     generation current engines require (Docker 29 refuses clients older than 1.44);
#   - cargo-deny;
#   - for the package (scripts/package.sh): cargo-deb, promtool, systemd-analyze.
# Idempotent: each step is skipped when its result is already there. Used by `.ci/run`
# and by the README's test command (`scripts/test.sh`), so a newcomer's machine and CI
# are provisioned the same way.
set -euo pipefail

log() { printf 'provision: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Downloads (never installs) Debian 13 packages into a directory: a pinned-off trixie source
# is used by `apt-get download` only, and removed again so that later installs see only
# bookworm.
trixie_download() {
    local dir=$1
    shift
    local list=/etc/apt/sources.list.d/felhom-trixie.list
    echo "deb http://deb.debian.org/debian trixie main" | as_root tee "$list" >/dev/null
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: -1\n' |
        as_root tee /etc/apt/preferences.d/felhom-trixie >/dev/null
    as_root apt-get update -qq
    local pkg
    for pkg in "$@"; do
        # apt warns that it downloads unsandboxed into a root-owned directory: expected.
        (cd "$dir" && apt-get download -qq "$pkg/trixie" >/dev/null 2>&1) || {
            log "apt-get download $pkg/trixie failed"
            as_root rm -f "$list" /etc/apt/preferences.d/felhom-trixie
            exit 1
        }
    done
    as_root rm -f "$list" /etc/apt/preferences.d/felhom-trixie
    as_root apt-get update -qq
    apt_updated=1
}

# --- Docker engine and compose v1 ------------------------------------------------------
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1; then
    log "installing docker.io and docker-compose (v1) from Debian"
    apt_install docker.io docker-compose iptables ca-certificates
fi

# --- compose v2 (CLI plugin from Debian 13) ----------------------------------------------
plugin_dir=/usr/libexec/docker/cli-plugins
if [ ! -x "$plugin_dir/docker-compose" ]; then
    log "installing compose v2 plugin from Debian 13's docker-compose package"
    tmp=$(mktemp -d)
    trixie_download "$tmp" docker-compose
    dpkg-deb -x "$tmp"/docker-compose_*.deb "$tmp/x"
    as_root mkdir -p "$plugin_dir"
    as_root install -m 0755 "$tmp/x/usr/libexec/docker/cli-plugins/docker-compose" "$plugin_dir/docker-compose"
    rm -rf "$tmp"
fi
# The docker CLI on some images lives in /usr/local/bin and looks for plugins under
# /usr/local/lib/docker/cli-plugins too; /usr/libexec/docker/cli-plugins is searched by both.

# --- start dockerd if it is not running -----------------------------------------------------
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd"
    if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
        as_root systemctl start docker
    else
        # No systemd (containers, CI sandboxes): run dockerd in the background.
        as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
    fi
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        log "dockerd did not come up; its log:"
        tail -n 40 /var/log/dockerd.log >&2 || true
        exit 1
    fi
fi
log "docker: $(docker version --format '{{.Server.Version}}'), compose v2: $(docker compose version --short 2>/dev/null || echo missing), compose v1: $(docker-compose version --short 2>/dev/null || echo missing)"

# --- the newer engine: Debian 13's dockerd 26 and containerd 1.7, Debian 12's runc --------
# Beside the main engine, never instead of it: its own socket, data root, exec root, pid file
# and containerd (socket, root, state); no bridge and no iptables rules (its containers use
# `network_mode: none`), so it touches nothing of the main engine's. Nothing is exported:
# tests reach it with DOCKER_HOST=unix:///run/felhom-docker26/docker.sock. Its runc is the
# one Debian 12's docker.io installed (trixie's needs glibc 2.38).
new_root=/opt/felhom-docker26
new_run=/run/felhom-docker26
new_data=/var/lib/felhom-docker26
new_host=unix://$new_run/docker.sock
new_path="$new_root/usr/bin:$new_root/usr/sbin:$PATH"
if [ ! -x "$new_root/usr/sbin/dockerd" ] || [ ! -x "$new_root/usr/bin/containerd" ]; then
    log "fetching the newer engine (docker.io and containerd from Debian 13)"
    tmp=$(mktemp -d)
    trixie_download "$tmp" docker.io containerd
    as_root mkdir -p "$new_root"
    for deb in "$tmp"/docker.io_*.deb "$tmp"/containerd_*.deb; do
        as_root dpkg-deb -x "$deb" "$new_root"
    done
    rm -rf "$tmp"
fi
if ! DOCKER_HOST=$new_host docker version >/dev/null 2>&1; then
    log "starting the newer engine on $new_host"
    as_root mkdir -p "$new_run" "$new_data"
    printf '%s\n' \
        'version = 2' \
        "root = \"$new_data/containerd\"" \
        "state = \"$new_run/containerd\"" \
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]' \
        '[grpc]' \
        "  address = \"$new_run/containerd.sock\"" \
        '[ttrpc]' \
        "  address = \"$new_run/containerd.sock.ttrpc\"" \
        '[debug]' \
        '  address = ""' |
        as_root tee "$new_run/containerd.toml" >/dev/null
    # A socket file may be left by a containerd that was killed: ask it.
    if ! as_root "$new_root/usr/bin/ctr" --address "$new_run/containerd.sock" version >/dev/null 2>&1; then
        # PATH: containerd finds its shims next to itself, and Debian 12's runc.
        as_root env PATH="$new_path" sh -c \
            "nohup '$new_root/usr/bin/containerd' --config '$new_run/containerd.toml' >/var/log/felhom-containerd26.log 2>&1 &"
        for _ in $(seq 1 40); do
            as_root "$new_root/usr/bin/ctr" --address "$new_run/containerd.sock" version >/dev/null 2>&1 && break
            sleep 0.25
        done
    fi
    as_root env PATH="$new_path" sh -c \
        "nohup '$new_root/usr/sbin/dockerd' --host '$new_host' --data-root '$new_data/docker' \
            --exec-root '$new_run/exec' --pidfile '$new_run/docker.pid' \
            --containerd '$new_run/containerd.sock' --bridge=none --iptables=false --ip6tables=false \
            >/var/log/felhom-dockerd26.log 2>&1 &"
    for _ in $(seq 1 60); do
        DOCKER_HOST=$new_host docker version >/dev/null 2>&1 && break
        sleep 0.5
    done
    if ! DOCKER_HOST=$new_host docker version >/dev/null 2>&1; then
        log "the newer engine did not come up; its logs:"
        tail -n 20 /var/log/felhom-containerd26.log /var/log/felhom-dockerd26.log >&2 || true
        exit 1
    fi
fi
log "newer engine: $(DOCKER_HOST=$new_host docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

# --- cargo-deny -------------------------------------------------------------------------------
if ! command -v cargo-deny >/dev/null 2>&1; then
    log "installing cargo-deny"
    cargo install --locked --quiet cargo-deny
fi

# --- packaging (scripts/package.sh): cargo-deb, promtool, systemd-analyze, dpkg's helpers ---
if ! command -v systemd-analyze >/dev/null 2>&1 || ! command -v deb-systemd-helper >/dev/null 2>&1; then
    log "installing systemd (systemd-analyze) and init-system-helpers from Debian"
    apt_install systemd init-system-helpers
fi
if ! command -v promtool >/dev/null 2>&1; then
    # Only promtool from Debian's prometheus package: installing the package would also start
    # a Prometheus server on machines without systemd.
    log "installing promtool from Debian's prometheus package"
    tmp=$(mktemp -d)
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    (cd "$tmp" && apt-get download -qq prometheus >/dev/null)
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    as_root install -m 0755 "$tmp/x/usr/bin/promtool" /usr/local/bin/promtool
    rm -rf "$tmp"
fi
if ! command -v cargo-deb >/dev/null 2>&1; then
    log "installing cargo-deb"
    cargo install --locked --quiet cargo-deb
fi
