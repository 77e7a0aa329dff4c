#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a used one: installs what the tests
# need when it is missing (s3s-fs, s3cmd, etcd's etcdctl), checks formatting and
# lints, then runs every test. The tests start their own S3 servers on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_missing=()
command -v s3cmd >/dev/null || apt_missing+=(s3cmd)
command -v etcdctl >/dev/null || apt_missing+=(etcd-client)
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

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --locked --quiet -- -D warnings
echo "== cargo test"
cargo test --locked
