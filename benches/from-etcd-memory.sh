#!/usr/bin/env bash
# Peak RSS and CPU of streamed stores from a live etcd, by variant: one etcd 3.5.1 filled
# as benches/from-etcd.sh fills it (PODS objects), s3s-fs on loopback, then each variant
# run in turn, RUNS rounds (interleaved); prints GNU time's line per run (label, wall,
# peak RSS, user, sys).
# Variants (VARIANTS, space-separated), each `label` or `label=VAR=v,VAR=v`: the VARs are
# set for that run only. Three are not env vars: `TO=file` stores to a local directory
# (STORAGE_URL=file://...) instead of s3s-fs, `BIN=snapshot` runs `snapshot` (a local
# file) instead of `store --from-etcd`, `DIR=path` takes the binaries from path instead
# of BIN_DIR (an earlier build, for before/after in one run).
# Default VARIANTS: default (COMPRESS_THREADS = the CPUs), arena1
# (GLIBC_TUNABLES=glibc.malloc.arena_max=1: one malloc arena), one (COMPRESS_THREADS=1).
# e.g. VARIANTS="default p5c2=PART_SIZE=5MiB,CONCURRENCY=2 file=TO=file snap=BIN=snapshot"
# Usage: BIN_DIR=<dir with store, snapshot> bash benches/from-etcd-memory.sh [RUNS] [PODS]
#        (run scripts/test.sh once first: it installs etcd 3.5.1 and s3s-fs)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-2}
pods=${2:-100000}
bin_dir=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}
variants=${VARIANTS:-"default arena1=GLIBC_TUNABLES=glibc.malloc.arena_max=1 one=COMPRESS_THREADS=1"}
source benches/common.sh
work=$(mktemp -d)
trap 'kill $etcd_pid $s3_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
start_etcd "$work"
s3port=$(free_port)
mkdir -p "$work/s3/bench" "$work/files"
timeout 3600 s3s-fs --host 127.0.0.1 --port "$s3port" --access-key AKIABENCHKEY \
  --secret-key benchsecretbenchsecret "$work/s3" >/dev/null 2>&1 &
s3_pid=$!
python3 benches/fill_etcd.py "$etcd_ep" "$pods"
export ACCESS_KEY_ID=AKIABENCHKEY SECRET_ACCESS_KEY=benchsecretbenchsecret \
  CLUSTER=bench LOG_LEVEL=warn ETCD_ENDPOINTS="$etcd_ep" COMPRESS_LEVEL=${COMPRESS_LEVEL:-3}
s3=(BUCKET_NAME=bench ENDPOINT="127.0.0.1:$s3port" INSECURE=true)
for run in $(seq "$runs"); do
  for spec in $variants; do
    label=${spec%%=*}
    env=("${s3[@]}")
    dir=$bin_dir
    bin=store
    if [ "$spec" != "$label" ]; then
      IFS=, read -ra sets <<<"${spec#*=}"
      for s in "${sets[@]}"; do
        case $s in
          TO=file) env=(STORAGE_URL="file://$work/files") ;;
          BIN=snapshot) bin=snapshot ;;
          DIR=*) dir=${s#DIR=} ;;
          *) env+=("$s") ;;
        esac
      done
    fi
    cmd=("$dir/store" --from-etcd)
    [ "$bin" = snapshot ] && cmd=("$dir/snapshot" --file "$work/snap-$label-$run.db.gz")
    /usr/bin/time -f "$label %e s %M KiB %U u %S s" env "${env[@]}" BACKUP_TO_CREATE="m-$label-$run" \
      "${cmd[@]}" 2>&1 | tail -1
    rm -f "$work"/snap-* "$work"/files/*
  done
done
