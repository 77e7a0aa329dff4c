#!/usr/bin/env bash
# Builds the snapjob container image without a Docker engine: one static binary
# (glibc, crt-static) with store/delete/copy/restore/snapshot/verify/list/doctor as links to it, the CA
# certificates, user 65532, no shell, FROM scratch, assembled with umoci into an OCI
# image layout. Usage: bash images/build.sh [OUT_DIR]   (default images/out)
#   skopeo copy oci:images/out/oci:snapjob docker-archive:snapjob.tar   # to load it elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-images/out}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
command -v umoci >/dev/null || { as_root apt-get update -qq; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq umoci >/dev/null; }
test -f /etc/ssl/certs/ca-certificates.crt || { as_root apt-get update -qq; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ca-certificates >/dev/null; }

target_dir=${CARGO_TARGET_DIR:-target}
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --quiet \
  --target x86_64-unknown-linux-gnu --bin snapjob
bin="$target_dir/x86_64-unknown-linux-gnu/release/snapjob"

rm -rf "$out"
mkdir -p "$out"
umoci init --layout "$out/oci"
umoci new --image "$out/oci:snapjob"
umoci unpack --image "$out/oci:snapjob" "$out/bundle" >/dev/null
root="$out/bundle/rootfs"
install -m 0755 "$bin" "$root/snapjob"
for name in store delete copy restore snapshot verify list doctor; do ln -s snapjob "$root/$name"; done
mkdir -p "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/:/nonexistent\nnonroot:x:65532:65532:nonroot:/:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
umoci repack --image "$out/oci:snapjob" "$out/bundle"
umoci config --image "$out/oci:snapjob" --config.user 65532:65532 --config.workingdir / \
  --config.entrypoint /store --config.label org.opencontainers.image.title=snapjob \
  --config.label org.opencontainers.image.licenses=Apache-2.0
rm -rf "$out/bundle"
umoci gc --layout "$out/oci"
echo "image: $out/oci:snapjob"
