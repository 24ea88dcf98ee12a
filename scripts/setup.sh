#!/usr/bin/env bash
# One-time set-up of a fresh machine: the embedded target and the C tools the sensor-node
# board's BLE controller bindings need (bindgen). Everything else builds from crates.io.
set -euo pipefail
rustup target add thumbv7em-none-eabihf
if ! command -v clang >/dev/null 2>&1 || ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-dev >/dev/null
fi
# Deployment tests (tests/tests/deploy.rs) and scripts/package.sh: systemd-analyze to verify the
# unit, dpkg-deb to inspect the package, cargo-deb (pinned by its own lock file) to build it.
if ! command -v systemd-analyze >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends systemd dpkg >/dev/null
fi
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install cargo-deb --locked
fi
# A mocked BlueZ for the Bluetooth source's test (agent/tests/bluetooth_dbusmock.rs): python-dbusmock's
# bluez5 template on a private dbus-daemon.
if ! dpkg -s python3-dbusmock >/dev/null 2>&1 || ! command -v dbus-daemon >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-dbusmock dbus >/dev/null
fi
# HQ's suite runs a second time on PostgreSQL (scripts/test.sh): its tests start throwaway
# clusters with the server programs (initdb, pg_ctl) of Debian's postgresql package.
if ! dpkg -s postgresql >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
# The lane page's browser test (tests/tests/lane_page.rs) drives Debian's headless Chromium.
if ! dpkg -s chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# Operators' tools the tests run against what we ship: promtool (Debian's prometheus package) on
# the agent's /metrics (agent/tests/promtool.rs), lintian on the .deb (tests/tests/deploy.rs).
if ! command -v promtool >/dev/null 2>&1 || ! command -v lintian >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus lintian >/dev/null
fi
# strace watches how a commit syncs the ledger's WAL (agent/tests/wal_sync.rs).
if ! command -v strace >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends strace >/dev/null
fi
# schemathesis (PyPI), pinned, in a virtualenv of its own: tests/tests/openapi.rs runs it
# against both servers' OpenAPI documents. Debian's python3 needs python3-venv for that.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV="$HOME/.local/share/loyalty-edge/schemathesis"
if ! "$SCHEMATHESIS_VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$SCHEMATHESIS_VENV"
  python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
