#!/usr/bin/env bash
# The README's test command: every test of the workspace, against a real Docker engine
# (compose v1 and v2), real TLS servers, real files and the real binaries.
# Provisions what is missing first (scripts/provision.sh), so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/provision.sh
# The test image (a static test app FROM scratch); the tests would build it too, but doing it
# once here keeps its build out of the test timings.
bash scripts/build-test-image.sh

# Two test threads: the machine has two cores and the Docker tests are CPU-bound on compose.
cargo test --workspace --all-features -- --test-threads="${FELHOM_TEST_THREADS:-2}" "$@"
