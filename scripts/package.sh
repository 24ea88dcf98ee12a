#!/usr/bin/env bash
# Builds the store box's .deb (target/debian/loyalty-agent_<version>_<arch>.deb): a release
# build of the agent plus the unit, udev rules, example config and scanner profiles listed in
# agent/Cargo.toml's [package.metadata.deb]. Prints the .deb's path. cargo-deb comes from
# scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo deb -p loyalty-agent "$@"
