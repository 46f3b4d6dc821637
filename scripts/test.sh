#!/usr/bin/env bash
# The one test command, for humans and CI: formatting, lints, then every test of the
# workspace (unit, integration, end to end against a real Prometheus, doctests).
set -euo pipefail
cd "$(dirname "$0")/.."

# what cargo does not bring (Debian's prometheus + promtool); skipped when present
if [ "${CI:-}" = true ] || [ "$(id -u)" = 0 ]; then
  scripts/services.sh install
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
