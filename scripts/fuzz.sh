#!/usr/bin/env bash
# Fuzzes the snapshot verifier, the gzip member index and the bbolt page reader with cargo-fuzz (libFuzzer).
#   bash scripts/fuzz.sh          # smoke run: 20 s per target (what CI runs)
#   bash scripts/fuzz.sh 3600     # long run: an hour per target
# Seeds are in fuzz/seeds/<target>; each run fuzzes a fresh copy of them, and any
# crash input is kept in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
# cargo-fuzz passes nightly-only flags (sanitizers, coverage); the machine has one
# stable toolchain, which accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
for target in verifier bolt gzip_members; do
  corpus=$(mktemp -d)
  log=$(mktemp)
  cp fuzz/seeds/"$target"/* "$corpus"/
  echo "== fuzz $target for ${secs}s"
  if ! cargo fuzz run --fuzz-dir fuzz "$target" "$corpus" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz $target failed (a crash input, if any, is in fuzz/artifacts/$target/)"
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log"
  rm -rf "$corpus" "$log"
done
