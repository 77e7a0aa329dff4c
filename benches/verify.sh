#!/usr/bin/env bash
# verify (download + SHA-256 + trailer + bbolt walk + facts + HashKV) vs
# `etcdutl snapshot status` 3.5.1 on the same ~1 GiB real etcd snapshot; `verify-check`
# is the db check alone (verify's check_seconds: structure walk, facts, HashKV).
# Fills an etcd 3.5.1 on loopback with ~1 GiB of real writes (large values, many small
# keys, overwrites, deletes, a compaction), saves the snapshot with etcdctl, then runs
# both tools RUNS times each, interleaved; reports median wall time and peak RSS, and the
# revision each reports. verify reads the snapshot from a file:// store (no network).
# Usage: bash benches/verify.sh [RUNS]   (run scripts/test.sh once first: it installs
# etcd 3.5.1 into ~/.cache/snapjob/etcd35-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
source benches/common.sh
bin=$etcd_bin
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'kill $etcd_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
start_etcd "$work"
ep=$etcd_ep
python3 - "$ep" <<'PY'
import base64, json, os, sys, urllib.request
ep = sys.argv[1]
def call(path, body):
    urllib.request.urlopen(urllib.request.Request(ep + path, json.dumps(body).encode()), timeout=60).read()
def put(k, v):
    call("/v3/kv/put", {"key": base64.b64encode(k).decode(), "value": base64.b64encode(v).decode()})
for i in range(1300):                      # ~890 MiB of large values
    put(b"/registry/blobs/%04d" % i, os.urandom(700 * 1024))
for i in range(100000):                    # ~140 MiB of small objects
    put(b"/registry/pods/ns-%03d/pod-%06d" % (i % 500, i), (b'{"kind":"Pod","spec":{"node":"n%d"}}' % i) * 40)
for i in range(0, 100000, 4):
    put(b"/registry/pods/ns-%03d/pod-%06d" % (i % 500, i), b'{"kind":"Pod","status":"Running"}' * 40)
for i in range(1, 100000, 8):
    call("/v3/kv/deleterange", {"key": base64.b64encode(b"/registry/pods/ns-%03d/pod-%06d" % (i % 500, i)).decode()})
PY
rev=$("$bin/etcdctl" --endpoints "$ep" get /none -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
"$bin/etcdctl" --endpoints "$ep" compact $((rev - 20000)) >/dev/null
for i in $(seq 1 50); do "$bin/etcdctl" --endpoints "$ep" put /after/$i v >/dev/null; done
mkdir "$work/store"
"$bin/etcdctl" --endpoints "$ep" snapshot save "$work/store/snap.db" >/dev/null 2>&1
live=$("$bin/etcdctl" --endpoints "$ep" endpoint hashkv -w json)
kill $etcd_pid; wait $etcd_pid 2>/dev/null || true
rm -rf "$work/etcd"
snap_mb=$(( $(stat -c %s "$work/store/snap.db") / 1048576 ))
cargo build --release --quiet --bin verify
for run in $(seq "$runs"); do
  /usr/bin/time -f "%e %M" -o "$work/t" "$bin/etcdutl" snapshot status "$work/store/snap.db" -w json >"$work/status.json" 2>/dev/null
  echo "etcdutl $(cat "$work/t")" >>"$work/results"
  /usr/bin/time -f "%e %M" -o "$work/t" env LOG_LEVEL=warn STORAGE_URL="file://$work/store" \
    "$target/release/verify" --key snap.db --temp-dir "$work" >"$work/verify.json"
  echo "verify $(cat "$work/t")" >>"$work/results"
  # The db check alone (structure walk, facts, HashKV) from verify's own line; no RSS.
  echo "verify-check $(head -1 "$work/verify.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["check_seconds"])') 0" >>"$work/results"
done
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); snapshot ${snap_mb} MiB from etcd 3.5.1; $runs runs each, interleaved"
echo "etcdutl snapshot status: $(cat "$work/status.json")"
echo "verify: $(head -1 "$work/verify.json")"
echo "live member endpoint hashkv: $live"
echo "| tool | wall s (median [min-max]) | peak RSS MiB |"
echo "|---|---|---|"
for tool in etcdutl verify verify-check; do
  grep "^$tool " "$work/results" | python3 -c '
import sys, statistics
rows = [l.split() for l in sys.stdin]
t = sorted(float(r[1]) for r in rows); m = sorted(int(r[2]) for r in rows)
print("| %s | %.2f [%.2f-%.2f] | %d |" % (rows[0][0], statistics.median(t), t[0], t[-1], statistics.median(m) // 1024))'
done
