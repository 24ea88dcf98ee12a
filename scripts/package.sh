#!/usr/bin/env bash
# Builds the store box's .deb (target/debian/loyalty-agent_<version>_<arch>.deb): a release
# build of the agent without the demo, its man page and bash completion generated from the
# CLI definition, plus the unit, udev rules, example config and scanner profiles listed in
# agent/Cargo.toml's [package.metadata.deb]; the binary stripped (Debian policy). Prints the
# .deb's path. cargo-deb comes from scripts/setup.sh; tests/tests/deploy.rs runs lintian on it.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p loyalty-agent --no-default-features >&2
agent="$target/release/loyalty-agent"
"$agent" man | gzip -9n > "$target/release/loyalty-agent.1.gz"
"$agent" completions bash > "$target/release/loyalty-agent.bash-completion"
cargo deb -p loyalty-agent --no-build --strip "$@"
