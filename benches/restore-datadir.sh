#!/usr/bin/env bash
# restore --data-dir vs `etcdutl snapshot restore` on a large real snapshot.
# Fills an etcd 3.5.1 on loopback with a few hundred MB of real writes (large values,
# many small keys, overwrites and deletes), takes the snapshot with etcdctl, then runs
# both restores RUNS times each, interleaved, into fresh directories; reports median
# wall time and peak RSS, and checks both dbs with `etcdutl snapshot status`.
# Usage: bash benches/restore-datadir.sh [RUNS]   (run scripts/test.sh once first: it
# installs etcd 3.5.1 into ~/.cache/snapjob/etcd35-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
source benches/common.sh
bin=$etcd_bin
cargo build --release --quiet --bins
work=$(mktemp -d)
trap 'kill $etcd_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
start_etcd "$work"
ep=$etcd_ep
python3 - "$ep" <<'PY'
import base64, json, os, sys, urllib.request
ep = sys.argv[1]
def put(k, v):
    body = json.dumps({"key": base64.b64encode(k).decode(), "value": base64.b64encode(v).decode()}).encode()
    urllib.request.urlopen(urllib.request.Request(ep + "/v3/kv/put", body), timeout=30).read()
def delete(k):
    body = json.dumps({"key": base64.b64encode(k).decode()}).encode()
    urllib.request.urlopen(urllib.request.Request(ep + "/v3/kv/deleterange", body), timeout=30).read()
for i in range(300):                       # ~210 MB of large values (like big CRDs/secrets)
    put(b"/registry/blobs/%04d" % i, os.urandom(700 * 1024))
for i in range(40000):                     # ~60 MB of small, compressible objects
    put(b"/registry/pods/ns-%03d/pod-%05d" % (i % 500, i), (b'{"kind":"Pod","spec":{"node":"n%d"}}' % i) * 40)
for i in range(0, 40000, 4):               # overwrites and deletes leave history and free pages
    put(b"/registry/pods/ns-%03d/pod-%05d" % (i % 500, i), b'{"kind":"Pod","status":"Running"}' * 40)
for i in range(1, 40000, 8):
    delete(b"/registry/pods/ns-%03d/pod-%05d" % (i % 500, i))
PY
"$bin/etcdctl" --endpoints "$ep" snapshot save "$work/snap.db" >/dev/null 2>&1
snap_mb=$(( $(stat -c %s "$work/snap.db") / 1048576 ))
args=(--name m0 --initial-cluster "m0=http://127.0.0.1:2380" --initial-cluster-token bench --initial-advertise-peer-urls "http://127.0.0.1:2380")
for run in $(seq "$runs"); do
  rm -rf "$work/ref" "$work/ours"
  /usr/bin/time -f "%e %M" -o "$work/t" "$bin/etcdutl" snapshot restore "$work/snap.db" "${args[@]}" --data-dir "$work/ref" >/dev/null 2>&1
  echo "etcdutl $(cat "$work/t")" >>"$work/results"
  /usr/bin/time -f "%e %M" -o "$work/t" env LOG_LEVEL=warn ./target/release/restore --snapshot "$work/snap.db" "${args[@]}" --data-dir "$work/ours"
  echo "snapjob $(cat "$work/t")" >>"$work/results"
done
ref=$("$bin/etcdutl" snapshot status -w json "$work/ref/member/snap/db")
ours=$("$bin/etcdutl" snapshot status -w json "$work/ours/member/snap/db")
cmp "$work/ref/member/wal/0000000000000000-0000000000000000.wal" "$work/ours/member/wal/0000000000000000-0000000000000000.wal"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); snapshot ${snap_mb} MiB from etcd 3.5.1; $runs runs each, interleaved"
echo "db status: etcdutl $ref | snapjob $ours"
printf '| tool | wall s (median [min-max]) | peak RSS MiB |\n|---|---|---|\n'
python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    tool, wall, rss = line.split()
    rows.setdefault(tool, []).append((float(wall), int(rss)))
for tool, v in rows.items():
    w = [x for x, _ in v]
    print(f"| {tool} | {statistics.median(w):.2f} [{min(w):.2f}-{max(w):.2f}] | {max(r for _, r in v) / 1024:.0f} |")
PY
