#!/usr/bin/env bash
# The downtime benchmark (docs/performance.md): felhom-controller against the engine alone
# (the floor), compose alone and the sequential script an administrator would write
# (bench/naive.sh), side by side in one run, on real compose stacks and the development agent;
# a realistic case of slow apps; the snapshot-detection latency; optionally the idle daemon.
#
#   scripts/bench.sh                       # the full run: N = 10,20, S = 0.2s, B = 5s, slow apps, detection
#   scripts/bench.sh --quick               # a smoke run, a few minutes
#   scripts/bench.sh --stacks 10 --rounds 3 --archive 5s --archive-alt 30s --idle \
#       --compose docker-compose --json results.json
#   scripts/bench.sh --idle --svg /tmp/bench-A-svg --json /tmp/bench-A.json   # issue 22's runs
#
# Every option is felhom-bench's (`--help`). Provisions what is missing first
# (scripts/provision.sh), builds the test image and the release binaries, and prints a
# markdown table on stdout (progress on stderr); with --svg DIR also a picture of every measured
# run. Takes about 15 minutes in full (--idle: 4 more).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/provision.sh
bash scripts/build-test-image.sh
cargo build --release --quiet -p felhom-controller -p felhom-devagent -p felhom-bench
target=${CARGO_TARGET_DIR:-target}
exec "$target/release/felhom-bench" "$@"
