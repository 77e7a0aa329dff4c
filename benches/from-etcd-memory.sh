#!/usr/bin/env bash
# Peak RSS of `store --from-etcd` by allocator setting and compressing threads: one
# etcd 3.5.1 filled as benches/from-etcd.sh fills it (PODS objects), s3s-fs on
# loopback, then each variant run in turn, RUNS rounds; prints GNU time's line per run
# (label, wall, peak RSS, user, sys). Variants: default (COMPRESS_THREADS = the CPUs),
# arena1 (GLIBC_TUNABLES=glibc.malloc.arena_max=1: one malloc arena), one
# (COMPRESS_THREADS=1).
# Usage: BIN_DIR=<dir with store> bash benches/from-etcd-memory.sh [RUNS] [PODS]
#        (run scripts/test.sh once first: it installs etcd 3.5.1 and s3s-fs)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2}
pods=${2:-100000}
bin_dir=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}
source benches/common.sh
work=$(mktemp -d)
trap 'kill $etcd_pid $s3_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
start_etcd "$work"
s3port=$(free_port)
mkdir -p "$work/s3/bench"
timeout 3600 s3s-fs --host 127.0.0.1 --port "$s3port" --access-key AKIABENCHKEY \
  --secret-key benchsecretbenchsecret "$work/s3" >/dev/null 2>&1 &
s3_pid=$!
python3 benches/fill_etcd.py "$etcd_ep" "$pods"
export ACCESS_KEY_ID=AKIABENCHKEY SECRET_ACCESS_KEY=benchsecretbenchsecret BUCKET_NAME=bench \
  ENDPOINT="127.0.0.1:$s3port" INSECURE=true CLUSTER=bench LOG_LEVEL=warn \
  ETCD_ENDPOINTS="$etcd_ep" COMPRESS_LEVEL=${COMPRESS_LEVEL:-3}
for run in $(seq "$runs"); do
  for v in default arena1 one; do
    case $v in
      default) env=() ;;
      arena1) env=(GLIBC_TUNABLES=glibc.malloc.arena_max=1) ;;
      one) env=(COMPRESS_THREADS=1) ;;
    esac
    /usr/bin/time -f "$v %e s %M KiB %U u %S s" env "${env[@]}" BACKUP_TO_CREATE="m-$v-$run" \
      "$bin_dir/store" --from-etcd 2>&1 | tail -1
  done
done
