#!/usr/bin/env bash
# Installs what building the web app needs, each only when missing, and puts it on PATH:
#   - the wasm32-unknown-unknown Rust target,
#   - wasm-bindgen-cli 0.2.130 (must equal the wasm-bindgen crate pinned in Cargo.toml),
#   - trunk 0.21.14 (0.22 needs a newer rustc),
#   - wasm-opt version_132 from npm's binaryen@132 (Debian's binaryen emits broken modules),
#     with playwright-core for the browser tests, both under tests/e2e/node_modules.
# Source it (`. scripts/web-tools.sh`) so PATH changes stay in the caller's shell.
# Trunk.toml sets offline = true: Trunk never downloads tools, it uses these.

_vit_lens_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "==> rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q ' 0.2.130'; then
  echo "==> cargo install wasm-bindgen-cli 0.2.130 (about 4 minutes)"
  cargo install wasm-bindgen-cli --version 0.2.130 --force
fi
if ! trunk --version 2>/dev/null | grep -q ' 0.21.14'; then
  echo "==> cargo install trunk 0.21.14 (about 15 minutes on 2 cores)"
  cargo install --locked trunk --version 0.21.14 --force
fi
if [ ! -x "$_vit_lens_root/tests/e2e/node_modules/.bin/wasm-opt" ] \
  || [ ! -d "$_vit_lens_root/tests/e2e/node_modules/playwright-core" ]; then
  echo "==> npm ci (binaryen 132, playwright-core) in tests/e2e"
  (cd "$_vit_lens_root/tests/e2e" && npm ci --no-audit --no-fund)
fi
export PATH="$_vit_lens_root/tests/e2e/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export TRUNK_SKIP_VERSION_CHECK=true
# Trunk runs cargo with --offline: fetch the crates first (a no-op when they are there).
(cd "$_vit_lens_root" && cargo fetch --quiet)
unset _vit_lens_root
