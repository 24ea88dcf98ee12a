#!/usr/bin/env bash
# Fuzzes every parser (fuzz/, cargo-fuzz + libFuzzer) for a bounded time each:
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
# Prints the executions and exec/s of each target; exits 1 if any target crashed, hung or broke
# an invariant (the input is saved under fuzz/artifacts/<target>/; replay it with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run -a <target> <file>`).
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer, -Cpasses=sancov-module, ...). The
# project has only the stable toolchain, so RUSTC_BOOTSTRAP=1 lets stable rustc accept them; the
# address sanitizer's runtime ships with stable's rust-std. FUZZ_SANITIZER=none builds without it,
# for a toolchain that lacks the runtime (then only panics, aborts and hangs are found). Builds go
# to fuzz/target (about 2 GB; the first takes about 12 minutes on 2 cores). Seeds come from fuzz/corpus/<target>/ (committed, never
# written to); what a run discovers goes to fuzz/target/corpus/<target>/ (ignored by git) and
# seeds the next run on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
sanitizer="${FUZZ_SANITIZER:-address}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
# The machine's own (stable) toolchain: no nightly is needed, nor could one be fetched.
export RUSTC_BOOTSTRAP=1
# -a: debug assertions and overflow checks on, so an arithmetic overflow is a finding too.
flags=(-a --sanitizer "$sanitizer")

cd fuzz
# cargo-fuzz looks for its binaries under fuzz/target.
unset CARGO_TARGET_DIR
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build "${flags[@]}"

logs="target/fuzz-logs"
mkdir -p "$logs"
failed=()
summary=()
for target in "${targets[@]}"; do
  found="target/corpus/$target"
  mkdir -p "$found"
  echo "== $target: ${seconds}s"
  status=0
  cargo fuzz run "${flags[@]}" "$target" "$found" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    >"$logs/$target.log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log" | tail -1)
  rate=$(grep -o 'exec/s: [0-9]*' "$logs/$target.log" | tail -1 | sed 's/exec\/s: //')
  cov=$(grep -o 'cov: [0-9]*' "$logs/$target.log" | tail -1 | sed 's/cov: //')
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    tail -n 40 "$logs/$target.log"
    summary+=("$(printf '%-16s FAILED (exit %s), see fuzz/%s/%s.log and fuzz/artifacts/%s/' "$target" "$status" "$logs" "$target" "$target")")
  else
    summary+=("$(printf '%-16s %12s execs %8s exec/s  cov %s' "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}")")
  fi
done

echo
echo "fuzzing, ${seconds}s per target (sanitizer: $sanitizer):"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
