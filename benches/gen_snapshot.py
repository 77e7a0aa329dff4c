"""Writes an etcd-shaped snapshot for the benchmarks (benches/peers.sh).

Usage: python3 benches/gen_snapshot.py random|k8s SIZE_MIB OUT

The file passes snapjob's verification like a real `etcdctl snapshot save`: the
bbolt magic at byte 16 of the first page, 4 KiB pages, and the SHA-256 of it all
as a 32-byte trailer. `random` fills the pages with random bytes (incompressible);
`k8s` with Kubernetes-like keys and JSON values ("k8s\\0"-prefixed, as the API
server writes them) drawn from a pool of 20,000 varied pods, far larger than
gzip's 32 KiB window, so it compresses like a real cluster's snapshot (about 5x
at gzip -6). Deterministic for a given mode and size.
"""
import hashlib
import json
import os
import random
import sys
import uuid

mode, size_mib, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rnd = random.Random(11)
BLOCK = 4 << 20


def uid():
    return str(uuid.UUID(int=rnd.getrandbits(128)))


def ts():
    return "2026-%02d-%02dT%02d:%02d:%02dZ" % (
        rnd.randint(1, 12), rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59))


def pod(i):
    ns, app = "ns-%03d" % (i % 300), rnd.choice(["api", "web", "worker", "cache", "db", "ingress"])
    name = "%s-%s-%05x" % (app, uid()[:10], rnd.getrandbits(20))
    body = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns, "uid": uid(), "resourceVersion": str(100000 + i),
            "creationTimestamp": ts(),
            "labels": {"app": app, "pod-template-hash": uid()[:10], "team": rnd.choice(["a", "b", "c"])},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name[:-6], "uid": uid(),
                                 "controller": True}],
        },
        "spec": {
            "nodeName": "node-%02d" % rnd.randint(0, 40),
            "containers": [{
                "name": app,
                "image": "registry.example/%s:v%d.%d.%d" % (app, rnd.randint(1, 3), rnd.randint(0, 20), rnd.randint(0, 9)),
                "env": [{"name": "TOKEN_%d" % k, "value": uid()} for k in range(rnd.randint(0, 4))],
                "resources": {"requests": {"cpu": "%dm" % rnd.choice([100, 250, 500]),
                                           "memory": "%dMi" % rnd.choice([128, 256, 512])}},
            }],
        },
        "status": {"phase": "Running", "podIP": "10.%d.%d.%d" % (rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(1, 254)),
                   "startTime": ts(), "conditions": [{"type": t, "status": "True", "lastTransitionTime": ts()}
                                                     for t in ("Initialized", "Ready", "PodScheduled")]},
    }
    key = "/registry/pods/%s/%s" % (ns, name)
    return key.encode() + b"\0k8s\0" + json.dumps(body, separators=(",", ":")).encode()


h = hashlib.sha256()
left = size_mib << 20
with open(out, "wb") as f:
    if mode == "k8s":
        pool = [pod(i) for i in range(20000)]
        data = b"".join(pool)
        pos = 0
    first = True
    while left > 0:
        n = min(BLOCK, left)
        if mode == "random":
            block = bytearray(os.urandom(n))
        else:
            while len(data) - pos < n:
                data = data[pos:] + b"".join(rnd.sample(pool, len(pool)))
                pos = 0
            block = bytearray(data[pos:pos + n])
            pos += n
        if first:
            block[:4096] = bytes(4096)
            block[16:20] = (0xED0CDAED).to_bytes(4, "little")
            first = False
        h.update(block)
        f.write(block)
        left -= n
    f.write(h.digest())
