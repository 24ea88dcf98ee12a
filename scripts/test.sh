#!/usr/bin/env bash
# README's test command. embassy-time's mock and std time drivers cannot link into one test
# binary, so the firmware runs in its own invocations, one per driver.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --exclude loyalty-firmware -- -D warnings
# The store box's build (the .deb): no demo, no simulation.
cargo clippy -p loyalty-agent --no-default-features -- -D warnings
cargo clippy -p loyalty-firmware --all-targets --features mock-time -- -D warnings
cargo clippy -p loyalty-firmware --all-targets --features sim -- -D warnings
cargo test --workspace --exclude loyalty-firmware
# HQ's whole suite again on PostgreSQL (a throwaway cluster per test binary, loyalty-sim's pg).
LOYALTY_HQ_TEST_BACKEND=postgres cargo test -p loyalty-hq
cargo test -p loyalty-firmware --features mock-time
cargo test -p loyalty-firmware --features sim
cargo build -p loyalty-firmware --target thumbv7em-none-eabihf --no-default-features --features node
(cd firmware/boards/nrf52840 && cargo build --release)
