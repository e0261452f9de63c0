#!/usr/bin/env bash
# Runs every test of vit-lens:
#   1. the native suite (CPU path against PyTorch references, GPU path on whatever
#      Vulkan/Metal/DX12 adapter exists — Mesa lavapipe in CI),
#   2. the wasm suite in headless Chromium (WebGPU on SwiftShader, the CPU engine in wasm),
#   3. the web app end to end: `trunk build`, then tests/e2e/run.mjs drives the page in
#      headless Chromium with and without WebGPU, against a local mock model hub.
# Installs what it needs first, each part only when missing (scripts/test-deps.sh): Debian's
# chromium + chromium-driver, mesa-vulkan-drivers and Node.js, numpy and Pillow at the
# versions of scripts/shapes/requirements.txt (the built-in model's held-out set is drawn at
# test time), and the web build tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# Mesa and Chromium want a private runtime directory.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/vit-lens-runtime-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR"
  chmod 700 "$XDG_RUNTIME_DIR"
fi

echo "==> test dependencies (installed when missing)"
. scripts/test-deps.sh

echo "==> native tests"
cargo test

echo "==> wasm tests in headless Chromium (WebGPU)"
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}"
# The runner gives chromedriver 5 s to bind its port by default and then fails; a cold start on
# a loaded machine can take longer. Allow two minutes (the runner restarts a try after 10 s),
# and load the binary once beforehand (this also prints its version into the log).
export WASM_BINDGEN_TEST_DRIVER_TIMEOUT="${WASM_BINDGEN_TEST_DRIVER_TIMEOUT:-120}"
"$CHROMEDRIVER" --version
# A headless Chromium renderer occasionally hangs while loading the test page ("Timed out
# receiving message from renderer"); a second run tells such a hang from a failing test.
if ! cargo test --target wasm32-unknown-unknown --test web; then
  echo "==> wasm tests failed or the browser hung; running them once more" >&2
  cargo test --target wasm32-unknown-unknown --test web
fi

echo "==> web app build (trunk build --release)"
trunk build
for wasm in dist/*.wasm; do
  printf '    %s: %s bytes, %s gzip -9\n' "$wasm" "$(wc -c <"$wasm")" "$(gzip -9c "$wasm" | wc -c)"
done

echo "==> web app end to end (headless Chromium; screenshots in target/e2e-screenshots)"
node tests/e2e/run.mjs --dist dist --shots target/e2e-screenshots
