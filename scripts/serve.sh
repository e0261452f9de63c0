#!/usr/bin/env bash
# Builds the web app and serves it on http://127.0.0.1:8080 with the built-in model
# (assets/model), which works with no network. Installs missing build tools first
# (scripts/web-tools.sh). Extra arguments go to `trunk serve` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/web-tools.sh
echo "==> trunk serve (release build; open http://127.0.0.1:8080)"
exec trunk serve "$@"
