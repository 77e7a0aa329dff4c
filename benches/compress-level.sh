#!/usr/bin/env bash
# Chooses the default gzip level of snapshots taken from etcd: fills an etcd 3.5.1 on
# loopback with Kubernetes-like objects (benches/fill_etcd.py), then runs
# `snapshot --compress-level N` for each level, RUNS times each, interleaved; reports
# time, size, ratio, and size relative to level 6.
# Usage: bash benches/compress-level.sh [RUNS] [PODS]
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
runs=${1:-3}
pods=${2:-20000}
cargo build --release --quiet --bins
work=$(mktemp -d)
trap 'kill $etcd_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
start_etcd "$work"
python3 benches/fill_etcd.py "$etcd_ep" "$pods"
for run in $(seq "$runs"); do
  for level in 1 2 3 4 5 6 9; do
    /usr/bin/time -f "%e %U" -o "$work/t" env LOG_LEVEL=warn ./target/release/snapshot --etcd-endpoints "$etcd_ep" \
      --compress-level "$level" --file "$work/s$level.db.gz"
    echo "$level $(cat "$work/t") $(stat -c %s "$work/s$level.db.gz")" >>"$work/results"
  done
done
./target/release/snapshot --etcd-endpoints "$etcd_ep" --compress none --file "$work/raw.db" 2>/dev/null
raw=$(stat -c %s "$work/raw.db")
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); etcd 3.5.1 with $pods pods, snapshot $((raw / 1048576)) MiB; $runs runs each, interleaved"
printf '| gzip level | wall s (median [min-max]) | CPU s (median) | compressed MiB | ratio | size vs level 6 |\n|---|---|---|---|---|---|\n'
python3 - "$work/results" "$raw" <<'PY'
import statistics, sys
raw = int(sys.argv[2]); rows = {}
for line in open(sys.argv[1]):
    level, wall, user, size = line.split()
    rows.setdefault(int(level), []).append((float(wall), float(user), int(size)))
six = rows[6][0][2]
for level in sorted(rows):
    w = [x for x, _, _ in rows[level]]; size = rows[level][0][2]
    cpu = statistics.median(u for _, u, _ in rows[level])
    print(f"| {level} | {statistics.median(w):.2f} [{min(w):.2f}-{max(w):.2f}] | {cpu:.2f} | {size/2**20:.1f} | {raw/size:.2f} | {100*size/six-100:+.1f}% |")
PY
