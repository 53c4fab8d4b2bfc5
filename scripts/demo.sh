#!/usr/bin/env bash
# The main job, shown on real containers: a whole quiesce cycle of felhom-controller against
# the development agent, on example compose stacks, with a timeline of what stopped and
# started when, and a look inside the backup it produced.
#
#   scripts/demo.sh            # on a fresh Debian 12 machine, as root
#
# It provisions Docker and compose if missing, builds the test image and the release binaries,
# then works in /tmp/felhom-demo (removed at the start of each run; the containers are removed
# at the end, the files are kept for a look, among them cycle.svg: the cycle as a picture).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

bash scripts/provision.sh
bash scripts/build-test-image.sh
echo "building the release binaries..."
cargo build --release --quiet -p felhom-controller -p felhom-devagent
bin="$repo/target/release"

work=/tmp/felhom-demo
stacks="demo-notes demo-photos demo-wiki traefik demo-oldapp"
cleanup() {
    for s in $stacks; do
        [ -d "$work/stacks/$s" ] &&
            (cd "$work/stacks/$s" && docker compose -p "$s" down -t 2 >/dev/null 2>&1 || true)
    done
    [ -n "${agent_pid:-}" ] && kill "$agent_pid" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
rm -rf "$work"
mkdir -p "$work"/{stacks,data,out}
# The state directory must be 0700 (the controller refuses a looser one; it would make it so).
install -d -m 0700 "$work/state"

# --- example stacks ------------------------------------------------------------------------
# demo-notes: an app and its database (depends_on: stopped app-first, started db-first); the
# database is kept running by its labels (docs/labels.md): its pre-snapshot hook dumps it into
# its volume before anything is stopped, its post-resume hook runs once the stacks resume;
# demo-photos: one app; demo-wiki: an app with a health check (start waits for healthy);
# traefik: protected, never touched; demo-oldapp: deployed but stopped before the cycle.
app() { # service data-subdir [extra yaml lines...]
    local svc=$1 data=$2; shift 2
    mkdir -p "$work/data/$data"
    printf '  %s:\n    image: felhom-testapp:dev\n    volumes: ["%s:/data"]\n    stop_grace_period: 10s\n' \
        "$svc" "$work/data/$data"
    for line in "$@"; do printf '    %s\n' "$line"; done
}
mk() { mkdir -p "$work/stacks/$1"; cat > "$work/stacks/$1/compose.yaml"; }
serve='command: ["serve", "--data", "/data"]'
hooked=(labels:
    '  felhom.quiesce: hook'
    '  felhom.pre-snapshot: /app dump /data/dump.sql'
    '  felhom.post-resume: /app dump /data/resumed')
{ echo "services:"; app db notes-db "$serve" "${hooked[@]}"; app app notes-app "$serve" "depends_on: [db]"; } | mk demo-notes
{ echo "services:"; app app photos "$serve"; } | mk demo-photos
{ echo "services:"; app app wiki \
    'command: ["serve", "--data", "/data", "--healthy-after", "1s"]' \
    'healthcheck: {test: ["CMD", "/app", "health"], interval: 1s, timeout: 1s, retries: 30}'; } | mk demo-wiki
{ echo "services:"; app proxy traefik "$serve"; } | mk traefik
{ echo "services:"; app app oldapp "$serve"; } | mk demo-oldapp

echo "starting the example stacks..."
for s in $stacks; do (cd "$work/stacks/$s" && docker compose -p "$s" up -d --wait >/dev/null 2>&1 || docker compose -p "$s" up -d >/dev/null); done
(cd "$work/stacks/demo-oldapp" && docker compose -p demo-oldapp stop -t 2 >/dev/null 2>&1)
sleep 1

# --- the development agent -------------------------------------------------------------------
"$bin/felhom-devagent" --listen 127.0.0.1:0 --source "$work/data" --out "$work/out" \
    --snapshot-delay 1s --archive-delay 3s --due once --events "$work/agent-events.jsonl" \
    >"$work/agent.out" 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 1 50); do grep -q '^token:' "$work/agent.out" 2>/dev/null && break; sleep 0.1; done
url=$(awk '/^url:/{print $2}' "$work/agent.out")
pin=$(awk '/^pin:/{print $2}' "$work/agent.out")
token=$(awk '/^token:/{print $2}' "$work/agent.out")
echo "development agent at $url (pin ${pin:0:23}...)"

cat > "$work/controller.toml" <<TOML
[agent]
url = "$url"
token = "$token"
pin_sha256 = "$pin"

[stacks]
root = "$work/stacks"
stop_timeout = "10s"

[quiesce]
state_dir = "$work/state"

[status]
listen = ""
TOML
ctl() { "$bin/felhom-controller" --config "$work/controller.toml" "$@"; }

echo
echo "== felhom-controller check  (stops nothing)"
ctl check
echo
echo "== felhom-controller once  (the agent says a backup is due)"
since=$(date +%s.%N)
ctl once >"$work/record.json" 2>"$work/controller.log" || { cat "$work/controller.log"; exit 1; }
until=$(date +%s.%N)
sleep 0.2
docker events --since "$since" --until "$(date +%s.%N)" --filter type=container \
    --format '{{json .}}' >"$work/docker-events.jsonl"
# The cycle's outcome arrives after the archive; let the agent finish writing it.
sleep 0.5

python3 - "$work" "$since" "$stacks" <<'PY'
import json, sys, os, tarfile
work, since, ours = sys.argv[1], float(sys.argv[2]), sys.argv[3].split()
rows = []
for line in open(f"{work}/docker-events.jsonl"):
    e = json.loads(line)
    attributes = e.get("Actor", {}).get("Attributes", {})
    # Only the demo's stacks: other containers on this engine (tests, say) are not the demo's.
    if attributes.get("com.docker.compose.project") not in ours:
        continue
    name = attributes.get("name", "?")
    act = e.get("Action") or e.get("status")
    if act in ("kill", "die", "start", "stop"):
        words = {"kill": "stop begins (SIGTERM)", "die": "stopped", "start": "started", "stop": "stop done"}
        if act == "stop":
            continue
        rows.append((e["timeNano"] / 1e9, "docker", f"{name:<24} {words[act]}"))
from datetime import datetime
def ts(s):
    s = s.replace("Z", "+00:00")
    if "." in s:
        head, frac = s.split(".", 1)
        digits = "".join(c for c in frac if c.isdigit())
        rest = frac[len(digits):]
        s = f"{head}.{digits[:6]}{rest}"
    return datetime.fromisoformat(s).timestamp()
for line in open(f"{work}/agent-events.jsonl"):
    e = json.loads(line)
    kind = e.get("event")
    if kind in ("backup_requested", "snapshot_taken", "archive_finished", "backup_failed"):
        rows.append((ts(e["at"]), "agent", kind.replace("_", " ") + f"  ({e.get('id','')})"))
rec = json.load(open(f"{work}/record.json"))
rows.append((ts(rec["started_at"]), "controller", f"cycle {rec['cycle_id']}: marker written"))
for s in rec["stacks"]:
    for svc in s.get("by_service", []):
        for h in svc.get("hooks", []):
            rows.append((ts(h["started_at"]), "controller",
                         f"{h['container']:<24} {h['hook']} hook {h['program']}: exit {h.get('exit_code')} in {h['duration_ms']} ms"))
rows.append((ts(rec["finished_at"]), "controller", f"cycle finished: {rec['outcome']}"))
rows.sort()
t0 = rows[0][0]
print("\n== timeline (seconds from the start of the cycle)")
for t, who, what in rows:
    print(f"  +{t - t0:6.3f}s  {who:<10}  {what}")
print("\n== per-stack downtime and capture verdict, per service (from the cycle record)")
for s in rec["stacks"]:
    down = f"down {s['downtime_ms']/1000:.2f}s" if s.get("downtime_ms") is not None else "not stopped"
    print(f"  {s['name']:<14} stopped {','.join(s['services']) or '-':<10} {down:<12} capture {s.get('capture', '?')}")
    for svc in s.get("by_service", []):
        print(f"      {svc['service']:<8} {svc['mode']:<5} {'stopped' if svc.get('stopped') else 'kept running':<13} capture {svc['capture']}")
print(f"  snapshot taken at +{ts(rec['snapshot_at']) - t0:.3f}s; outcome: {rec['outcome']}; stranded: {rec['stranded'] or 'none'}")
last_up = max(ts(s["started_at"]) for s in rec["stacks"] if s.get("started_at"))
print(f"  the last stack ran at +{last_up - t0:.3f}s; the cycle ended at +{ts(rec['finished_at']) - t0:.3f}s "
      "(the settle watch, stacks.settle, is cycle time, not downtime)")
arch = os.path.join(work, "out", rec["backup_id"] + ".tar")
print(f"\n== inside the backup {arch}")
with tarfile.open(arch) as t:
    names = t.getnames()
    for d in sorted({n.split('/')[0] for n in names if '/' in n}):
        flag = any(n == f"{d}/running" for n in names)
        log = t.extractfile(f"{d}/log") if f"{d}/log" in names else None
        last = log.read().decode().strip().splitlines()[-1] if log else "(no log)"
        dump = t.extractfile(f"{d}/dump.sql") if f"{d}/dump.sql" in names else None
        if dump:
            state = f"kept running; consistent via its {dump.read().decode().strip()}"
        elif flag:
            state = "RUNNING when captured (crash-consistent)"
        else:
            state = "cleanly shut down"
        print(f"  {d:<10} {state:<42} last log line: {last[:70]}")
PY
echo
echo "== felhom-controller status --svg $work/cycle.svg  (also draws the cycle)"
ctl status --svg "$work/cycle.svg"
echo
echo "A picture of the cycle (a row per stack, down from its stop until it ran again; the"
echo "snapshot and the cycle's end as lines): $work/cycle.svg — open it in a browser."
echo
echo "demo-notes' database was never stopped: its pre-snapshot hook dumped it into the backup"
echo "(dump.sql above) and its post-resume hook ran once the stacks resumed ($work/data/notes-db/resumed)."
echo "The protected stack (traefik) and the stopped-before stack (demo-oldapp) were not touched;"
echo "files are kept in $work (cycle.svg, controller.log, agent-events.jsonl, record.json, out/)."
