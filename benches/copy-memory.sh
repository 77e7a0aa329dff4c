#!/usr/bin/env bash
# Memory of `copy` against the object's size: stores an incompressible etcd-shaped
# snapshot of each size on one s3s-fs, copies it to a second s3s-fs with copy's
# defaults (PART_SIZE 8MiB, CONCURRENCY 4), and prints wall time and peak RSS (GNU
# time). Flat peak RSS across sizes is the claim; the MiB/s are loopback, one run.
# Usage: bash benches/copy-memory.sh [SIZES_MIB...]   (default: 64 512)
# Env: PROFILE=debug uses the dev build in $CARGO_TARGET_DIR (default: release).
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
sizes=${*:-64 512}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install time"; exit 1; }
profile=${PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
if [ "$profile" = release ]; then cargo build --release --quiet --bin store --bin copy; else cargo build --quiet --bin store --bin copy; fi
bin="$target/$profile"
work=$(mktemp -d)
trap 'kill $a $b 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/a/bench" "$work/b/bench"
pa=$(free_port); pb=$(free_port)
timeout 3600 s3s-fs --host 127.0.0.1 --port "$pa" --access-key AKIABENCHKEY --secret-key benchsecretbenchsecret "$work/a" >/dev/null 2>&1 &
a=$!
timeout 3600 s3s-fs --host 127.0.0.1 --port "$pb" --access-key AKIABENCHKEY --secret-key benchsecretbenchsecret "$work/b" >/dev/null 2>&1 &
b=$!
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$pa)); socket.create_connection(('127.0.0.1',$pb))" 2>/dev/null; do sleep 0.1; done
export ACCESS_KEY_ID=AKIABENCHKEY SECRET_ACCESS_KEY=benchsecretbenchsecret BUCKET_NAME=bench \
  INSECURE=true CLUSTER=bench LOG_LEVEL=warn
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); s3s-fs on loopback; $profile build"
printf '| object MiB | parts | wall s | MiB/s | peak RSS MiB |\n|---|---|---|---|---|\n'
for mib in $sizes; do
  python3 - "$work/snap.db" "$mib" <<'PY'
import hashlib, os, sys
h = hashlib.sha256()
with open(sys.argv[1], 'wb') as f:
    for i in range(int(sys.argv[2])):
        block = bytearray(os.urandom(1 << 20))
        if i == 0:
            block[:16] = bytes(16)
            block[16:20] = (0xED0CDAED).to_bytes(4, 'little')
        h.update(block); f.write(block)
    f.write(h.digest())
PY
  ENDPOINT="127.0.0.1:$pa" BACKUP_TO_CREATE="$mib.db" "$bin/store" --file "$work/snap.db"
  /usr/bin/time -f "%e %M" -o "$work/t" env SOURCE_ENDPOINT="127.0.0.1:$pa" SOURCE_INSECURE=true \
    ENDPOINT="127.0.0.1:$pb" "$bin/copy" --from s3://bench --to s3://bench --key "bench-$mib.db"
  read -r wall rss <"$work/t"
  cmp "$work/a/bench/bench-$mib.db" "$work/b/bench/bench-$mib.db"
  python3 -c "m=$mib; w=$wall; print(f'| {m} | {-(-m*1048576//(8<<20))} | {w:.1f} | {m/w:.0f} | {$rss/1024:.0f} |')"
  rm -f "$work/snap.db" "$work/a/bench/bench-$mib.db" "$work/b/bench/bench-$mib.db"
done
