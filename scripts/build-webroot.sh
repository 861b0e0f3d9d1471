#!/usr/bin/env bash
# Builds the phone pages into webroot/dist (sip.js bundled with esbuild; no CDN).
set -euo pipefail
cd "$(dirname "$0")/../webroot"
mkdir -p dist
if [[ -f package.json ]]; then
  npm ci --no-audit --no-fund
  npm run build
fi
