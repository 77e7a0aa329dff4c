#!/usr/bin/env bash
# The main job on the embedded default, no S3 server needed: `store` a real etcd
# snapshot (fixtures/) into a local directory, `restore` it back, and compare.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bins
dir=${DEMO_DIR:-$(mktemp -d)}
export STORAGE_URL="file://$dir/bucket" CLUSTER=demo-cluster BACKUP_TO_CREATE=daily-backup.db.gz \
  BACKUP_TO_RESTORE=daily-backup.db.gz LOG_FORMAT=human
echo "== store fixtures/etcd-3.4-small.db.gz -> $STORAGE_URL/$CLUSTER-$BACKUP_TO_CREATE"
./target/debug/store --file fixtures/etcd-3.4-small.db.gz
echo "== restore it to $dir/restored/snapshot.db"
./target/debug/restore --output "$dir/restored/snapshot.db"
echo "== compare with the snapshot etcd wrote"
cmp "$dir/restored/snapshot.db" fixtures/etcd-3.4-small.db
echo "identical: $(stat -c %s "$dir/restored/snapshot.db") bytes, SHA-256 trailer verified"
echo "== a corrupt snapshot is refused (exit 65) and nothing is stored"
set +e
BACKUP_TO_CREATE=corrupt.db.gz ./target/debug/store --file fixtures/broken-trailer.db.gz
code=$?
set -e
echo "exit code $code; stored objects: $(ls "$dir/bucket")"
[ "$code" = 65 ]
