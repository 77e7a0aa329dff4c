#!/usr/bin/env bash
# What encryption (age, X25519) costs store and restore: a 1 GiB incompressible
# etcd-shaped snapshot, gzip -1'd (the 1 GiB input of store-defaults.sh), stored to
# s3s-fs on loopback and restored from it, plain and encrypted, interleaved, RUNS
# times each, with the defaults (one PUT up to 256 MiB, so parts here); prints median
# wall time, client CPU and peak RSS, and checks every restore gives the snapshot.
# Usage: bash benches/encrypt.sh [RUNS]   (needs s3s-fs, age-keygen, GNU time; see scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install time"; exit 1; }
cargo build --release --quiet --bins
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/root/bench" "$work/in"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
timeout 3600 s3s-fs --host 127.0.0.1 --port "$port" --access-key AKIABENCHKEY --secret-key benchsecretbenchsecret "$work/root" >/dev/null 2>&1 &
server=$!
python3 - "$work/snap.db" <<'PY'
import hashlib, os, sys
# 1 GiB etcd-shaped snapshot: bbolt magic at byte 16, random pages, SHA-256 trailer.
h = hashlib.sha256()
with open(sys.argv[1], 'wb') as f:
    for i in range(256):
        block = bytearray(os.urandom(4 << 20))
        if i == 0:
            block[:16] = bytes(16)
            block[16:20] = (0xED0CDAED).to_bytes(4, 'little')
        h.update(block); f.write(block)
    f.write(h.digest())
PY
gzip -1 -c "$work/snap.db" >"$work/in/snapshot.db.gz"
age-keygen -o "$work/key.txt" 2>/dev/null
recipient=$(age-keygen -y "$work/key.txt")
export ACCESS_KEY_ID=AKIABENCHKEY SECRET_ACCESS_KEY=benchsecretbenchsecret BUCKET_NAME=bench \
  INSECURE=true CLUSTER=bench LOG_LEVEL=warn ENDPOINT="127.0.0.1:$port"
want=$(sha256sum <"$work/snap.db")
for run in $(seq "$runs"); do
  for mode in plain age; do
    extra=(); rextra=()
    if [ "$mode" = age ]; then extra=(--recipient "$recipient"); rextra=(--identity "$work/key.txt"); fi
    /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$target/release/store" --file "$work/in/snapshot.db.gz" \
      --backup "$mode" "${extra[@]}"
    echo "store $mode $(cat "$work/t")" >>"$work/results"
    /usr/bin/time -f "%e %U %S %M" -o "$work/t" "$target/release/restore" --backup "$mode" \
      --output "$work/out.db" "${rextra[@]}"
    echo "restore $mode $(cat "$work/t")" >>"$work/results"
    [ "$(sha256sum <"$work/out.db")" = "$want" ] || { echo "restore $mode gave other bytes"; exit 1; }
    rm -f "$work/out.db" "$work/root/bench/bench-$mode"
  done
done
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem/{print $2}') GiB; s3s-fs 0.14.1 on loopback; input $(( $(stat -c %s "$work/in/snapshot.db.gz") / 1048576 )) MiB gzip; $runs runs each, interleaved"
printf '| operation | mode | wall s (median [min-max]) | client CPU s (median) | peak RSS MiB |\n|---|---|---|---|---|\n'
python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    op, mode, wall, user, sys_, rss = line.split()
    rows.setdefault((op, mode), []).append((float(wall), float(user) + float(sys_), int(rss)))
for (op, mode), v in rows.items():
    walls = [w for w, _, _ in v]
    print(f"| {op} | {mode} | {statistics.median(walls):.2f} [{min(walls):.2f}-{max(walls):.2f}] | "
          f"{statistics.median(c for _, c, _ in v):.2f} | {max(r for _, _, r in v) / 1024:.0f} |")
PY
