#!/usr/bin/env bash
# Browser end-to-end tests (webroot/e2e, `npm test` in webroot/): headless Debian Chromium driven
# by playwright-core and headless Debian Firefox ESR driven by puppeteer-core over WebDriver BiDi,
# against the real gateway, Kamailio (registrar), SIPp and baresip (a real SIP phone), all on
# 127.0.0.1.
# Installs what is missing (Debian packages; never a downloaded browser), builds the phone pages
# and, when missing, the gateway binary, makes the tone WAVs, runs the suite.
# Env: GATEWAY_BIN (default target/debug/webrtc-phone), E2E_TONE_DIR (default target/e2e-tones),
# E2E_KEEP=1 (keep each scenario's logs and SIPp message files), E2E_VERBOSE=1,
# E2E_BROWSERS (default chromium,firefox: the browsers each scenario runs in).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

pkgs=(chromium firefox-esr sox kamailio sip-tester python3 baresip)
command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "e2e: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export GATEWAY_BIN=${GATEWAY_BIN:-$root/target/debug/webrtc-phone}
if [[ ! -x $GATEWAY_BIN ]]; then
  export PATH=$HOME/.cargo/bin:$PATH
  echo "e2e: building the gateway"
  cargo build -p signaling
fi

scripts/build-webroot.sh

export E2E_TONE_DIR=${E2E_TONE_DIR:-$root/target/e2e-tones}
mkdir -p "$E2E_TONE_DIR"
for hz in 440 660 880; do # 880: baresip's microphone
  [[ -s $E2E_TONE_DIR/tone$hz.wav ]] || sox -n -r 48000 -c 1 -b 16 "$E2E_TONE_DIR/tone$hz.wav" synth 30 sine $hz vol 0.5
done

cd webroot
t0=$(date +%s)
npm test
echo "e2e: passed in $(($(date +%s) - t0)) s"
