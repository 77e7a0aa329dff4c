#!/usr/bin/env bash
# Chooses store's default part size and concurrency: uploads a 1 GiB incompressible
# snapshot (raw and gzip'd) to s3s-fs on loopback in parts (SINGLE_PUT_MAX=0) with
# each setting, interleaved, RUNS times each, directly and through the 10 ms latency
# proxy (benches/latency_proxy.rs), and prints median wall time, MiB/s, client CPU
# and peak RSS.
# Usage: bash benches/store-defaults.sh [RUNS]   (needs s3s-fs, GNU time; see scripts/test.sh)
# Env: SETTINGS (default "8MiB:4 8MiB:8 16MiB:4 16MiB:8 32MiB:4"), PROFILES ("direct latency").
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install time"; exit 1; }
# Two invocations: with an example in the same one, cargo would build the binaries with
# the dev-dependencies' features too.
cargo build --release --quiet --bins
cargo build --release --quiet --example latency-proxy
work=$(mktemp -d)
trap 'kill $server $proxy 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/root/bench"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
timeout 3600 s3s-fs --host 127.0.0.1 --port "$port" --access-key AKIABENCHKEY --secret-key benchsecretbenchsecret "$work/root" >/dev/null 2>&1 &
server=$!
lport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
timeout 3600 ./target/release/examples/latency-proxy "$lport" "$port" 10 &
proxy=$!
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
gzip -1 -c "$work/snap.db" >"$work/snap.db.gz"
export ACCESS_KEY_ID=AKIABENCHKEY SECRET_ACCESS_KEY=benchsecretbenchsecret BUCKET_NAME=bench \
  INSECURE=true CLUSTER=bench LOG_LEVEL=warn SINGLE_PUT_MAX=0
settings=${SETTINGS:-"8MiB:4 8MiB:8 16MiB:4 16MiB:8 32MiB:4"}
results="$work/results"
for run in $(seq "$runs"); do
  for profile in ${PROFILES:-direct latency}; do
    if [ "$profile" = latency ]; then ep="127.0.0.1:$lport"; else ep="127.0.0.1:$port"; fi
    for input in snap.db snap.db.gz; do
      for s in $settings; do
        part=${s%%:*}; conc=${s##*:}
        /usr/bin/time -f "%e %U %S %M" -o "$work/t" env ENDPOINT="$ep" PART_SIZE="$part" CONCURRENCY="$conc" \
          BACKUP_TO_CREATE="$input-$part-$conc" ./target/release/store --file "$work/$input"
        echo "$profile $input $part $conc $(cat "$work/t")" >>"$results"
        rm -f "$work/root/bench/bench-$input-$part-$conc"
      done
    done
  done
done
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem/{print $2}') GiB; s3s-fs 0.14.1 on loopback; $runs runs each, interleaved"
printf '| profile | input | part size | concurrency | wall s (median [min-max]) | MiB/s | client CPU s | peak RSS MiB |\n|---|---|---|---|---|---|---|---|\n'
python3 - "$results" "$work/snap.db" "$work/snap.db.gz" <<'PY'
import os, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    profile, inp, part, conc, wall, user, sys_, rss = line.split()
    rows.setdefault((profile, inp, part, conc), []).append((float(wall), float(user) + float(sys_), int(rss)))
sizes = {'snap.db': os.path.getsize(sys.argv[2]), 'snap.db.gz': os.path.getsize(sys.argv[3])}
for (profile, inp, part, conc), v in rows.items():
    walls = [w for w, _, _ in v]
    med = statistics.median(walls)
    cpu = statistics.median(c for _, c, _ in v)
    rss = max(r for _, _, r in v) / 1024
    print(f"| {profile} | {inp} | {part} | {conc} | {med:.2f} [{min(walls):.2f}-{max(walls):.2f}] | {sizes[inp]/2**20/med:.0f} | {cpu:.2f} | {rss:.0f} |")
PY
