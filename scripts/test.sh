#!/usr/bin/env bash
# Installs the test dependencies and runs every test: formatting, lints, unit and integration
# tests (the real binary on loopback), and the end-to-end suites.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh test
export PATH=$HOME/.cargo/bin:$PATH
t0=$(date +%s)
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --workspace
echo "== browser end-to-end tests"
scripts/e2e.sh
echo "== all tests passed in $(( $(date +%s) - t0 )) s"
