#!/usr/bin/env bash
# The one test command, for humans and CI: formatting, lints, then every test of the
# workspace (unit, integration, end to end against real Prometheus, Kafka-wire and
# MongoDB-wire servers, doctests). It installs what is missing (as root or in CI) and
# starts the servers on loopback for the run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" = true ] || [ "$(id -u)" = 0 ]; then
  scripts/services.sh install
fi
if [ -x "${SLAMON_TOOLS_DIR:-/opt/slamon-tools}/tansu/bin/tansu" ] && command -v secantusd-py >/dev/null 2>&1; then
  scripts/services.sh start
  trap 'scripts/services.sh stop' EXIT
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
