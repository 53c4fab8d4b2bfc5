#!/usr/bin/env bash
# Provision what the tests need on a fresh Debian 12 machine (run as root):
#   - a Docker engine from Debian's packages (docker.io), started if not running;
#   - compose v1 (Debian 12's `docker-compose`, Python);
#   - compose v2 as the CLI plugin, taken from Debian 13's `docker-compose` package;
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

# --- Docker engine and compose v1 ------------------------------------------------------
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1; then
    log "installing docker.io and docker-compose (v1) from Debian"
    apt_install docker.io docker-compose iptables ca-certificates
fi

# --- compose v2 (CLI plugin from Debian 13) ----------------------------------------------
plugin_dir=/usr/libexec/docker/cli-plugins
if [ ! -x "$plugin_dir/docker-compose" ]; then
    log "installing compose v2 plugin from Debian 13's docker-compose package"
    list=/etc/apt/sources.list.d/felhom-trixie.list
    tmp=$(mktemp -d)
    # A pinned-off trixie source: used only by `apt-get download`, never for installs.
    echo "deb http://deb.debian.org/debian trixie main" | as_root tee "$list" >/dev/null
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: -1\n' |
        as_root tee /etc/apt/preferences.d/felhom-trixie >/dev/null
    as_root apt-get update -qq
    apt_updated=1
    (cd "$tmp" && apt-get download -qq docker-compose/trixie >/dev/null)
    dpkg-deb -x "$tmp"/docker-compose_*.deb "$tmp/x"
    as_root mkdir -p "$plugin_dir"
    as_root install -m 0755 "$tmp/x/usr/libexec/docker/cli-plugins/docker-compose" "$plugin_dir/docker-compose"
    # Remove the trixie source again so later `apt-get install`s see only bookworm.
    as_root rm -f "$list" /etc/apt/preferences.d/felhom-trixie
    as_root apt-get update -qq
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
