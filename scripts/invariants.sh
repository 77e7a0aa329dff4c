#!/usr/bin/env bash
# The long run of the invariant harness (tests/invariants.rs): fresh seeds, one
# after another, until SECONDS (default 3600) have passed. Prints each seed; stops
# at the first failure, whose message names the seed to replay with
# SNAPJOB_SEED=<seed> cargo test --test invariants.
# Needs what scripts/test.sh installs (s3s-fs).
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-3600}
steps=${SNAPJOB_STEPS:-60}
cargo test --locked --test invariants --no-run --quiet
end=$((SECONDS + limit))
runs=0
while [ "$SECONDS" -lt "$end" ]; do
  seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
  runs=$((runs + 1))
  echo "== run $runs, seed $seed"
  log=$(mktemp)
  if ! SNAPJOB_SEED=$seed SNAPJOB_STEPS=$steps cargo test --locked --quiet --test invariants -- --nocapture >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "invariants: failed at seed $seed after $runs runs"
    exit 1
  fi
  rm -f "$log"
done
echo "invariants: $runs runs of $steps steps, no failure"
