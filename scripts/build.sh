#!/usr/bin/env bash
# Builds webrtc-phone: the release binary and (when its sources are present) the web root.
# The Dockerfile calls this same script, so the image is built the way the README builds.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ ${SKIP_DEPS:-0} == 1 ]] || source scripts/deps.sh build
export PATH=$HOME/.cargo/bin:$PATH
cargo build --release --locked -p signaling
[[ ${SKIP_WEBROOT:-0} == 1 ]] || scripts/build-webroot.sh
echo "build: target/release/webrtc-phone"
