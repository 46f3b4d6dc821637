#!/usr/bin/env bash
# Installs what the test suite needs that cargo does not bring: Debian's Prometheus
# (prometheus + promtool) for the end-to-end test. Idempotent: skips what is there.
# The tests start and stop the servers themselves (on loopback, in temporary folders).
set -euo pipefail

need_prometheus() { ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; }

install() {
  if need_prometheus; then
    if [ "$(id -u)" != 0 ]; then
      echo "services.sh: prometheus/promtool missing; run as root or: sudo apt-get install -y prometheus" >&2
      return 1
    fi
    echo "services.sh: installing Debian's prometheus"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
  echo "services.sh: $(prometheus --version 2>&1 | head -n1)"
}

case "${1:-install}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
