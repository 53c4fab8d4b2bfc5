#!/usr/bin/env bash
# Builds the test app's image `felhom-testapp:dev` locally (no registry): a static
# felhom-testapp binary in a `FROM scratch` image (crates/testapp/Dockerfile).
#
# Used by the stacks tests, the end-to-end tests and the demo. Idempotent and quick when
# nothing changed: cargo rebuilds nothing, and `docker build` is skipped when the image
# already carries the binary's sha256 in its label. Where the newer engine of
# scripts/provision.sh runs, the image is loaded into it too (`docker save | docker load`).
#
# The binary goes to its own target dir (target/testapp): this script is run from inside
# `cargo test`, whose process holds the lock of the main target dir.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=${FELHOM_TESTAPP_IMAGE:-felhom-testapp:dev}
target=x86_64-unknown-linux-gnu
target_dir="$repo/target/testapp"
label=felhom.testapp.sha256

log() { printf 'build-test-image: %s\n' "$*" >&2; }

# A caller's cargo settings (e.g. from a surrounding `cargo test`) must not leak into this
# build: the static link flags below are the whole point.
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET CARGO_BUILD_TARGET_DIR
export CARGO_TARGET_DIR="$target_dir"
# --target keeps the flags off build scripts and proc macros, which cannot be static.
RUSTFLAGS="-C target-feature=+crt-static" "${CARGO:-cargo}" build --quiet --release \
    --manifest-path "$repo/Cargo.toml" -p felhom-testapp --target "$target"

binary="$target_dir/$target/release/felhom-testapp"
sha=$(sha256sum "$binary" | cut -d' ' -f1)

# The image's label on an engine (empty where it has no such image).
label_on() {
    docker image inspect --format "{{ index .Config.Labels \"$label\" }}" "$image" 2>/dev/null || true
}

# The newer engine (scripts/provision.sh), when it runs: the same image, loaded.
newer_host=unix:///run/felhom-docker26/docker.sock
load_into_newer() {
    if [ ! -S "${newer_host#unix://}" ] || ! DOCKER_HOST=$newer_host docker version >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(DOCKER_HOST=$newer_host label_on)" = "$sha" ]; then
        return 0
    fi
    log "loading $image into the newer engine ($newer_host)"
    docker save "$image" | DOCKER_HOST=$newer_host docker load >/dev/null
}

if [ "$(label_on)" = "$sha" ]; then
    load_into_newer
    exit 0
fi

# A private build context: the binary and the Dockerfile, not the whole repository.
context="$target_dir/image-context"
rm -rf "$context"
mkdir -p "$context"
cp "$binary" "$context/felhom-testapp"
cp "$repo/crates/testapp/Dockerfile" "$context/Dockerfile"

# The legacy builder where buildx is missing (Debian's docker.io has none).
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
log "building $image (binary sha256 $sha)"
# Quiet on success (the legacy builder prints a deprecation notice); everything on failure.
if ! output=$(docker build --label "$label=$sha" -t "$image" "$context" 2>&1); then
    printf '%s\n' "$output" >&2
    log "docker build of $image failed"
    exit 1
fi
log "built $image"
load_into_newer
