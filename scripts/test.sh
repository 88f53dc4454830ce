#!/usr/bin/env bash
# Install everything the tests need, then run the linters, the type checker and the test suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k collector`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: promtool and Prometheus, Alertmanager, VictoriaMetrics and Chromium are started
# by the tests themselves on free loopback ports.
debian_packages=(prometheus prometheus-alertmanager victoria-metrics chromium)
missing=()
for package in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "Installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
# Debian starts Prometheus and friends as services; the tests start their own, so stop those
# where a service manager is running.
if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
  $([[ $(id -u) -eq 0 ]] || echo sudo) systemctl stop prometheus prometheus-alertmanager \
    prometheus-node-exporter victoria-metrics 2>/dev/null || true
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-dev.txt

.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
