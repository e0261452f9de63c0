#!/usr/bin/env bash
# Installs everything the test suite needs, each part only when it is missing, so a second
# run costs seconds:
#   - Debian packages: Mesa's lavapipe Vulkan driver (the GPU tests run on it), Chromium and
#     ChromeDriver (the wasm and end-to-end suites), Node.js and npm;
#   - numpy and Pillow at the versions of scripts/shapes/requirements.txt (the built-in
#     model's held-out set is drawn at test time, pixel for pixel);
#   - rustfmt, clippy and the web build tools (scripts/web-tools.sh: the wasm32 target,
#     wasm-bindgen-cli, trunk, wasm-opt and playwright-core).
# Source it (`. scripts/test-deps.sh`) so the PATH it sets stays in the caller's shell.
# Installing Debian packages needs root (or sudo); elsewhere it says what to install.

_vit_lens_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# apt under load sometimes fails to fetch an archive; try again before giving up.
_vit_lens_apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "missing Debian packages: $*; install them as root (apt-get install $*)" >&2
      return 1
    fi
  fi
  $sudo apt-get update -qq || true
  local tries=0
  until $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 4 ]; then
      echo "apt-get install $* failed $tries times" >&2
      return 1
    fi
    sleep 10
    $sudo apt-get update -qq || true
  done
}

_vit_lens_missing=()
for _vit_lens_pkg in mesa-vulkan-drivers libvulkan1 chromium chromium-driver python3-pip; do
  dpkg -s "$_vit_lens_pkg" >/dev/null 2>&1 || _vit_lens_missing+=("$_vit_lens_pkg")
done
command -v python3 >/dev/null 2>&1 || _vit_lens_missing+=(python3)
command -v node >/dev/null 2>&1 || _vit_lens_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || _vit_lens_missing+=(npm)
# A Python that is not Debian's (pyenv, a venv) brings its own pip.
if python3 -m pip --version >/dev/null 2>&1; then
  _vit_lens_filtered=()
  for _vit_lens_pkg in "${_vit_lens_missing[@]}"; do
    [ "$_vit_lens_pkg" = python3-pip ] || _vit_lens_filtered+=("$_vit_lens_pkg")
  done
  _vit_lens_missing=("${_vit_lens_filtered[@]}")
fi
if [ "${#_vit_lens_missing[@]}" -gt 0 ]; then
  echo "==> apt-get install ${_vit_lens_missing[*]}"
  _vit_lens_apt_install "${_vit_lens_missing[@]}"
fi

# The exact numpy and Pillow the held-out set's fingerprint was taken with.
if ! python3 - "$_vit_lens_root/scripts/shapes/requirements.txt" <<'EOF' 2>/dev/null; then
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, want = line.split("==")
        if version(name) != want:
            sys.exit(1)
EOF
  echo "==> pip install -r scripts/shapes/requirements.txt"
  # Debian's own Python refuses system-wide installs unless told this is intended.
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --break-system-packages -r "$_vit_lens_root/scripts/shapes/requirements.txt" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      -r "$_vit_lens_root/scripts/shapes/requirements.txt"
fi

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  echo "==> rustup component add rustfmt clippy"
  rustup component add rustfmt clippy
fi

. "$_vit_lens_root/scripts/web-tools.sh"

unset _vit_lens_root _vit_lens_missing _vit_lens_filtered _vit_lens_pkg
unset -f _vit_lens_apt_install
