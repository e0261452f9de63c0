#!/usr/bin/env bash
# Runs every test of vit-lens: the native suite (CPU path against PyTorch references, GPU path
# on whatever Vulkan/Metal/DX12 adapter exists — Mesa lavapipe in CI), then the browser suite
# in headless Chromium with WebGPU (SwiftShader). Needs what .ci/run installs: the wasm32
# target, wasm-bindgen-cli 0.2.130, chromium + chromium-driver, mesa-vulkan-drivers.
set -euo pipefail
cd "$(dirname "$0")/.."

# Mesa and Chromium want a private runtime directory.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "${XDG_RUNTIME_DIR}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/vit-lens-runtime-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR"
  chmod 700 "$XDG_RUNTIME_DIR"
fi

echo "==> native tests"
cargo test

echo "==> browser tests (headless Chromium, WebGPU)"
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}"
cargo test --target wasm32-unknown-unknown --test web
