#!/usr/bin/env bash
# Builds the Debian package and checks it (run by .ci/run; needs scripts/provision.sh):
#   - `cargo deb -p felhom-controller` (one release build), its contents listed;
#   - the conffile, the units, the timer, the alert rules and the fleet dashboard are in it,
#     the binary stripped;
#   - `promtool check rules` and `promtool test rules` on the alert rules;
#   - the units' hardening: `systemd-analyze security --offline=true` exposure of each service
#     at most 3.0 (MAX_EXPOSURE), `LimitCORE=0`, the credential example the binary reads;
#   - as root: `dpkg -i`, `systemd-analyze verify` of the installed units (it needs their
#     ExecStart binary to exist), nothing installed or made by the maintainer scripts under
#     /etc/felhom is accessible to other users; where systemd is PID 1 (CI's Debian machine),
#     `check` run in the service's sandbox (its hardening as systemd-run properties: it reaches
#     the docker socket and runs `docker compose`) and the daemon started, scraped and
#     stopped as a unit; then `dpkg -r` (units gone, conffile kept), `dpkg -P`.
# Prints the package's path and size and how long the build took.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'package: %s\n' "$*" >&2; }
fail() { printf 'package: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in cargo-deb dpkg-deb promtool systemd-analyze; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (run scripts/provision.sh)"
done

# --- alert rules: syntax, then behaviour ---------------------------------------------------
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts_test.yml)

# --- the units' hardening (docs/operations.md, "The units' hardening") ------------------------
# systemd-analyze's overall exposure, 0 to 10; --threshold takes tenths. The score needs no
# installed unit nor a running systemd (--offline).
MAX_EXPOSURE=30
for unit in deploy/systemd/felhom-controller.service deploy/systemd/felhom-controller-recover.service; do
    if ! out=$(systemd-analyze security --offline=true --threshold="$MAX_EXPOSURE" "$unit" 2>&1); then
        printf '%s\n' "$out" | grep -v '✓' >&2
        fail "$unit: exposure above $((MAX_EXPOSURE / 10)).$((MAX_EXPOSURE % 10))"
    fi
    log "$(basename "$unit"): $(printf '%s\n' "$out" | grep -o 'exposure level.*: [0-9.]* [A-Z]*')"
    grep -qx 'LimitCORE=0' "$unit" || fail "$unit: no LimitCORE=0 (a core would hold the token)"
    grep -qx '#LoadCredential=agent-token:/etc/felhom/agent.token' "$unit" ||
        fail "$unit: no LoadCredential= example for the credential the binary reads"
done

# --- build -----------------------------------------------------------------------------------
started=$(date +%s)
deb=$(cargo deb -p felhom-controller | tail -n 1)
log "built $deb in $(($(date +%s) - started)) s ($(du -h "$deb" | cut -f1))"
[ -f "$deb" ] || fail "cargo deb did not name a package file"

# --- contents ----------------------------------------------------------------------------------
contents=$(dpkg-deb -c "$deb")
printf '%s\n' "$contents"
for path in \
    ./usr/bin/felhom-controller \
    ./etc/felhom/controller.toml \
    ./usr/lib/systemd/system/felhom-controller.service \
    ./usr/lib/systemd/system/felhom-controller-recover.service \
    ./usr/lib/systemd/system/felhom-controller-recover.timer \
    ./usr/share/felhom-controller/alerts.yml \
    ./usr/share/felhom-controller/felhom-fleet.json \
    ./usr/share/doc/felhom-controller/operations.md \
    ./usr/share/doc/felhom-controller/configuration.md \
    ./usr/share/doc/felhom-controller/labels.md; do
    grep -qE " ${path//./\\.}\$" <<<"$contents" || fail "$path is not in the package"
done
grep -qE '^-rw------- .* \./etc/felhom/controller\.toml$' <<<"$contents" ||
    fail "the sample config is not mode 0600 (it may hold the token)"
conffiles=$(dpkg-deb -f "$deb" >/dev/null && dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
grep -qx /etc/felhom/controller.toml <<<"$conffiles" || fail "controller.toml is not a conffile"
dpkg-deb -f "$deb" Package Version Depends

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/root"
# A stripped ELF has no .symtab section: look for its name in the section-name table.
if grep -qa '\.symtab' "$tmp/root/usr/bin/felhom-controller"; then
    fail "the binary is not stripped"
fi
log "binary: $(du -h "$tmp/root/usr/bin/felhom-controller" | cut -f1), stripped"

# --- install, verify, remove (root only: dpkg changes the machine) ----------------------------
if [ "$(id -u)" -ne 0 ]; then
    log "not root: install, systemd-analyze verify and removal skipped"
    exit 0
fi
dpkg -i "$deb"
units=(/usr/lib/systemd/system/felhom-controller.service
    /usr/lib/systemd/system/felhom-controller-recover.service
    /usr/lib/systemd/system/felhom-controller-recover.timer)
# --man=no: the units point at docs, not at man pages.
if ! systemd-analyze verify --man=no "${units[@]}" 2>"$tmp/verify"; then
    cat "$tmp/verify" >&2
    dpkg -P felhom-controller || true
    fail "systemd-analyze verify"
fi
# Warnings about other units on this machine are not ours; warnings about ours fail.
if grep -i 'felhom' "$tmp/verify"; then
    dpkg -P felhom-controller || true
    fail "systemd-analyze verify warned about our units"
fi
/usr/bin/felhom-controller --version
# Nothing the package or its maintainer scripts made under /etc/felhom is accessible to other
# users: the config holds or names the token, and the token file goes there.
[ "$(stat -c %a /etc/felhom)" = 700 ] || fail "/etc/felhom is mode $(stat -c %a /etc/felhom), not 0700"
open=$(find /etc/felhom -perm /o=rwx)
[ -z "$open" ] || fail "accessible to other users: $open"

# The hardened unit for real, where systemd runs (not on a machine whose PID 1 is something
# else: there the units are verified and scored only; docs/operations.md says what that leaves).
if [ -d /run/systemd/system ]; then
    unit=/usr/lib/systemd/system/felhom-controller.service
    props=()
    while IFS= read -r line; do
        props+=(-p "$line")
    done < <(sed -n '/^\[Service\]/,/^\[/p' "$unit" | grep -E '^[A-Z][A-Za-z]+=' |
        grep -vE '^(Type|NotifyAccess|ExecStart|Restart|RestartSec|WatchdogSec|TimeoutStartSec|TimeoutStopSec|KillMode)=')
    # `check` touches what a cycle touches: the docker socket, `docker compose version`, the
    # list of the running stacks (no [agent] in the sample config: the agent is not asked).
    if ! systemd-run --wait --pipe --collect --quiet "${props[@]}" /usr/bin/felhom-controller check; then
        dpkg -P felhom-controller || true
        fail "felhom-controller check failed inside the service's sandbox"
    fi
    systemctl start felhom-controller || {
        journalctl -u felhom-controller --no-pager -n 50 >&2 || true
        dpkg -P felhom-controller || true
        fail "the hardened daemon did not start (READY=1)"
    }
    curl -sf --max-time 5 http://127.0.0.1:9787/metrics | grep -q '^felhom_build_info' || {
        systemctl stop felhom-controller || true
        dpkg -P felhom-controller || true
        fail "the hardened daemon's /metrics did not answer"
    }
    systemctl stop felhom-controller
    log "the hardened unit ran: check in its sandbox, the daemon started, scraped, stopped"
else
    log "systemd is not PID 1 here: the units were verified and scored, not run"
fi
[ -L /etc/systemd/system/multi-user.target.wants/felhom-controller.service ] ||
    fail "the service was not enabled"
[ -L /etc/systemd/system/timers.target.wants/felhom-controller-recover.timer ] ||
    fail "the timer was not enabled"

dpkg -r felhom-controller
[ ! -e /usr/bin/felhom-controller ] || fail "dpkg -r left the binary"
[ ! -e /etc/systemd/system/multi-user.target.wants/felhom-controller.service ] ||
    fail "dpkg -r left the service enabled"
[ ! -e /etc/systemd/system/timers.target.wants/felhom-controller-recover.timer ] ||
    fail "dpkg -r left the timer enabled"
[ -f /etc/felhom/controller.toml ] || fail "dpkg -r removed the conffile (only purge may)"
dpkg -P felhom-controller
[ ! -e /etc/felhom/controller.toml ] || fail "dpkg -P left the conffile"
log "installed, verified and removed: OK"
