#!/usr/bin/env bash
# The backup script an administrator would write without felhom-controller — the baseline of
# the benchmark (docs/performance.md). Stop each stack in turn, start the backup, poll its
# status every 2 s (the controller's default `status_poll_interval`) until it is done, start
# each stack in turn. It does the job right — clean stops, every stack started again even when
# the backup fails — only one thing at a time, and it waits for the whole backup.
#
#   AGENT_URL=https://127.0.0.1:8443 AGENT_TOKEN=... [CYCLE_ID=...] [COMPOSE="docker compose"] \
#   [POLL_INTERVAL=2] [MAX_WAIT=1800] bench/naive.sh STACK_DIR...
#
# Each STACK_DIR holds a compose file; its name is the compose project's (compose's default).
set -uo pipefail

: "${AGENT_URL:?set AGENT_URL}" "${AGENT_TOKEN:?set AGENT_TOKEN}"
read -r -a compose <<<"${COMPOSE:-docker compose}"
poll=${POLL_INTERVAL:-2}
max_wait=${MAX_WAIT:-1800}
cycle=${CYCLE_ID:-naive-$(date +%s)}
auth="Authorization: Bearer $AGENT_TOKEN"
status=0

for dir in "$@"; do
    (cd "$dir" && "${compose[@]}" stop) || status=1
done

# -k: the agent's certificate is self-signed (the controller pins it; a script would not).
if curl -fsSk -X POST -H "$auth" -H 'Content-Type: application/json' \
    -d "{\"cycle_id\":\"$cycle\"}" "$AGENT_URL/backup"; then
    echo
    give_up=$((SECONDS + max_wait))
    while sleep "$poll"; do
        if [ "$SECONDS" -ge "$give_up" ]; then
            echo "no end of the backup after ${max_wait}s: starting the stacks" >&2
            status=1
            break
        fi
        answer=$(curl -fsSk -H "$auth" "$AGENT_URL/backup/status") || continue
        case $answer in
        *'"phase":"done"'*) break ;;
        *'"phase":"failed"'* | *'"phase":"idle"'*)
            echo "backup failed: $answer" >&2
            status=1
            break
            ;;
        esac
    done
else
    echo "the agent refused the backup" >&2
    status=1
fi

for dir in "$@"; do
    (cd "$dir" && "${compose[@]}" start) || status=1
done
exit $status
