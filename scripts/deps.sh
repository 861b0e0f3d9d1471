#!/usr/bin/env bash
# Installs what webrtc-phone needs on Debian (bookworm): `deps.sh build` for building it,
# `deps.sh test` for building and running every test, `deps.sh bench` for the benchmarks (the
# same set: the tests already run rtpengine and Kamailio with its WebSocket and TLS modules).
# Installs only what is missing.
set -euo pipefail
what=${1:-build}

build_pkgs=(build-essential pkg-config libssl-dev clang libclang-dev openssl ca-certificates curl)
[[ ${SKIP_WEBROOT:-0} == 1 ]] || build_pkgs+=(nodejs npm) # webroot: npm ci + esbuild (Node >= 18)
# Real peers for the integration tests: Kamailio (registrar/PBX; its WebSocket and TLS modules for
# the WSS edge that bench/tests/ng_kamailio.rs and the ng e2e test drive our node through), SIPp
# (package sip-tester) and rtpengine (bench/tests/ng_differential.rs compares the media node's ng
# replies with its own).
test_pkgs=("${build_pkgs[@]}" python3 kamailio kamailio-websocket-modules kamailio-tls-modules sip-tester rtpengine-daemon)
bench_pkgs=("${test_pkgs[@]}")

case "$what" in
  build) pkgs=("${build_pkgs[@]}") ;;
  test) pkgs=("${test_pkgs[@]}") ;;
  bench) pkgs=("${bench_pkgs[@]}") ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  # Node may come from elsewhere (nodesource, nvm): a working node and npm count as installed.
  if [[ $p == nodejs || $p == npm ]] && command -v "${p/nodejs/node}" >/dev/null 2>&1; then
    continue
  fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: the toolchain from rustup (Debian's cargo is too old for this workspace).
if ! command -v cargo >/dev/null 2>&1; then
  if [[ -x $HOME/.cargo/bin/cargo ]]; then
    export PATH=$HOME/.cargo/bin:$PATH
  else
    echo "deps: installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    export PATH=$HOME/.cargo/bin:$PATH
  fi
fi
