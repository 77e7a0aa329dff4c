#!/usr/bin/env bash
# store --from-etcd vs today's pipeline on the same live etcd:
#   today: etcdctl snapshot save + gzip -9 + s3cmd put   (init container, then s3cmd)
#   ours:  store --from-etcd                              (one process, streaming)
# Fills an etcd 3.5.1 on loopback with Kubernetes-like objects (benches/fill_etcd.py),
# uploads to s3s-fs on loopback, RUNS times each, interleaved; reports wall time, the
# ratio, CPU (user+sys), peak RSS of the largest process, and the object sizes. Ours runs
# twice: with COMPRESS_THREADS=1 and with the default (the CPUs allowed); with
# BASE_BIN=DIR also the `store` in DIR (an earlier build, for before/after).
# Usage: bash benches/from-etcd.sh [RUNS] [PODS]   (after scripts/test.sh installed the tools)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
pods=${2:-150000}
level=${COMPRESS_LEVEL:-3}
source benches/common.sh
bin=$etcd_bin
cargo build --release --quiet --locked --bin store
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'kill $etcd_pid $s3_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
start_etcd "$work"
ep=$etcd_ep
s3port=$(free_port)
mkdir -p "$work/s3/bench"
timeout 7200 s3s-fs --host 127.0.0.1 --port "$s3port" --access-key AKIABENCHKEY --secret-key benchsecretbenchsecret "$work/s3" >/dev/null 2>&1 &
s3_pid=$!
python3 benches/fill_etcd.py "$ep" "$pods"
cat >"$work/s3cfg" <<CFG
[default]
access_key = AKIABENCHKEY
secret_key = benchsecretbenchsecret
host_base = 127.0.0.1:$s3port
host_bucket = 127.0.0.1:$s3port
use_https = False
signature_v2 = False
bucket_location = us-east-1
CFG
export ACCESS_KEY_ID=AKIABENCHKEY SECRET_ACCESS_KEY=benchsecretbenchsecret BUCKET_NAME=bench \
  ENDPOINT="127.0.0.1:$s3port" INSECURE=true CLUSTER=bench LOG_LEVEL=warn ETCD_ENDPOINTS="$ep" COMPRESS_LEVEL="$level"
t() { /usr/bin/time -f "%e %M %U %S" -o "$work/t" "$@"; cat "$work/t"; }
for run in $(seq "$runs"); do
  rm -f "$work/today.db" "$work/today.db.gz"
  a=$(t "$bin/etcdctl" --endpoints "$ep" snapshot save "$work/today.db" 2>/dev/null | tail -1)
  b=$(t sh -c "gzip -9 -c '$work/today.db' > '$work/today.db.gz'" | tail -1)
  c=$(t s3cmd -q -c "$work/s3cfg" put "$work/today.db.gz" "s3://bench/today-$run.db.gz" | tail -1)
  d=$(t env BACKUP_TO_CREATE="ours-$run.db.gz" "$target/release/store" --from-etcd | tail -1)
  e=$(t env BACKUP_TO_CREATE="one-$run.db.gz" COMPRESS_THREADS=1 "$target/release/store" --from-etcd | tail -1)
  f=$e
  if [ -n "${BASE_BIN:-}" ]; then
    f=$(t env BACKUP_TO_CREATE="base-$run.db.gz" "$BASE_BIN/store" --from-etcd | tail -1)
  fi
  echo "$a|$b|$c|$d|$e|$f" >>"$work/results"
done
raw=$(stat -c %s "$work/today.db"); today_gz=$(stat -c %s "$work/today.db.gz"); ours_gz=$(stat -c %s "$work/s3/bench/bench-ours-1.db.gz")
echo "machine: $(nproc) cores (available_parallelism: the default COMPRESS_THREADS), $(lscpu | sed -n 's/^Model name: *//p'); etcd 3.5.1 with $pods pods; snapshot $((raw / 1048576)) MiB; s3s-fs on loopback; $runs runs each, interleaved"
python3 - "$work/results" "$raw" "$today_gz" "$ours_gz" "$level" <<'PY'
import statistics, sys
raw, tgz, ogz, level = (int(x) for x in sys.argv[2:6])
rows = [[tuple(map(float, step.split())) for step in line.strip().split("|")] for line in open(sys.argv[1])]
today = [r[0][0] + r[1][0] + r[2][0] for r in rows]
ours = [r[3][0] for r in rows]
med = statistics.median
one = [r[4][0] for r in rows]
cpu = lambda i: med(r[i][2] + r[i][3] for r in rows)
print("| pipeline | wall s (median [min-max]) | CPU s user+sys (median) | peak RSS MiB (largest process) | object MiB |")
print("|---|---|---|---|---|")
print(f"| etcdctl snapshot save + gzip -9 + s3cmd put | {med(today):.2f} [{min(today):.2f}-{max(today):.2f}] | {cpu(0)+cpu(1)+cpu(2):.2f} | {max(max(s[1] for s in r[:3]) for r in rows)/1024:.0f} | {tgz/2**20:.1f} |")
print(f"| store --from-etcd (gzip level {level}, COMPRESS_THREADS=1) | {med(one):.2f} [{min(one):.2f}-{max(one):.2f}] | {cpu(4):.2f} | {max(r[4][1] for r in rows)/1024:.0f} | {ogz/2**20:.1f} |")
print(f"| store --from-etcd (gzip level {level}, default threads) | {med(ours):.2f} [{min(ours):.2f}-{max(ours):.2f}] | {cpu(3):.2f} | {max(r[3][1] for r in rows)/1024:.0f} | {ogz/2**20:.1f} |")
if __import__("os").environ.get("BASE_BIN"):
    base = [r[5][0] for r in rows]
    print(f"| store --from-etcd, BASE_BIN build (gzip level {level}) | {med(base):.2f} [{min(base):.2f}-{max(base):.2f}] | {cpu(5):.2f} | {max(r[5][1] for r in rows)/1024:.0f} | |")
print(f"steps of today's pipeline (median s): snapshot {med(r[0][0] for r in rows):.2f}, gzip -9 {med(r[1][0] for r in rows):.2f}, s3cmd put {med(r[2][0] for r in rows):.2f}; ratio today/ours {med(today)/med(ours):.1f}x; 1 thread / default {med(one)/med(ours):.2f}x")
PY
