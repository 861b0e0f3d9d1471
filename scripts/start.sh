#!/usr/bin/env bash
# Installs what is missing, builds, and starts the gateway in the foreground.
# With no OUTBOUND_PROXY/OUTBOUND_ROUTE it runs the built-in demo PBX.
# Defaults here suit a non-root user: HTTPS on 8443 (the container uses 443).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
export HTTPS_PORT=${HTTPS_PORT:-8443}
echo "start: open https://localhost:${HTTPS_PORT}/ (accept the self-signed certificate once)"
exec target/release/webrtc-phone "$@"
