#!/usr/bin/env bash
# Checks the image images/build.sh made: its contents (entrypoints, user 65532, CA
# certificates, no shell, under 15 MB compressed), then runs it the way FROM scratch
# runs: the unpacked image root in a chroot with only what the runtime and the kubelet
# add (/dev nodes, /etc/hosts), as user 65532, storing a snapshot to an S3 server on
# loopback addressed as "localhost" (name resolution without libc's NSS modules).
# Usage: bash images/check_image.sh [OUT_DIR]   (needs root for chroot and mknod)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-images/out}
python3 - "$out/oci" <<'PY'
import json, sys, tarfile
layout = sys.argv[1]
blob = lambda d: f"{layout}/blobs/{d['digest'].replace(':', '/')}"
index = json.load(open(f"{layout}/index.json"))
ref = [m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "snapjob"]
assert len(ref) == 1, index
manifest = json.load(open(blob(ref[0])))
config = json.load(open(blob(manifest["config"])))["config"]
assert config.get("User") == "65532:65532", config.get("User")
assert config.get("Entrypoint") == ["/store"], config.get("Entrypoint")
names = set()
for layer in manifest["layers"]:
    with tarfile.open(blob(layer)) as t:
        names |= {m.name.lstrip("./") for m in t.getmembers()}
for need in ["snapjob", "store", "delete", "copy", "restore", "snapshot", "etc/ssl/certs/ca-certificates.crt"]:
    assert need in names, f"the image has no {need}: {sorted(names)}"
for shell in ["bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh"]:
    assert shell not in names, f"the image has a shell: {shell}"
size = sum(l["size"] for l in manifest["layers"]) + manifest["config"]["size"]
assert size < 15 * 1024 * 1024, f"the image is {size} bytes compressed"
print(f"image contents ok: user 65532, entrypoint /store, {len(names)} entries, no shell, {size / 1048576:.1f} MiB compressed")
PY

work=$(mktemp -d)
s3=""
trap '[ -n "$s3" ] && kill $s3 2>/dev/null; rm -rf "$work"' EXIT
umoci unpack --image "$out/oci:snapjob" "$work/bundle" >/dev/null
root="$work/bundle/rootfs"
mkdir -p "$root/dev"
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 666 "$root/dev/random" c 1 8
mknod -m 666 "$root/dev/urandom" c 1 9
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
install -m 0644 fixtures/etcd-3.4-small.db.gz "$root/tmp/snapshot.db.gz"
mkdir -p "$work/s3/bkt"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
timeout 120 s3s-fs --host 127.0.0.1 --port "$port" --access-key AKIAIMAGECHECK --secret-key imagecheck-throwaway-secret "$work/s3" >/dev/null 2>&1 &
s3=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
env -i ACCESS_KEY_ID=AKIAIMAGECHECK SECRET_ACCESS_KEY=imagecheck-throwaway-secret BUCKET_NAME=bkt \
  ENDPOINT="http://localhost:$port" CLUSTER=c BACKUP_TO_CREATE=image.db.gz SNAPSHOT_FILE=/tmp/snapshot.db.gz \
  LOG_FORMAT=json /usr/sbin/chroot --userspec=65532:65532 "$root" /store
cmp "$work/s3/bkt/c-image.db.gz" fixtures/etcd-3.4-small.db.gz
echo "image runs: store as 65532 in the bare image root, endpoint localhost, object stored and identical"
