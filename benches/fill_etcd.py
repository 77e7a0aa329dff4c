"""Fills an etcd with Kubernetes-like objects through its JSON gateway.

Usage: python3 benches/fill_etcd.py ENDPOINT PODS
Writes PODS pods and PODS/2 events (varied names, UIDs, timestamps, labels,
managed fields, env values; each value prefixed with "k8s\\0" like the API
server's), then rewrites a fifth of the pods (history) and deletes a tenth
(tombstones). The objects are deterministic (seeded); they are written by 8
threads, so revisions are not.
"""
import base64
import json
import random
import sys
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

ep, pods = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7)


def uid():
    return str(uuid.UUID(int=rnd.getrandbits(128)))


def call(path, body):
    req = urllib.request.Request(ep + path, json.dumps(body).encode())
    urllib.request.urlopen(req, timeout=30).read()


def put(k, v):
    call("/v3/kv/put", {"key": base64.b64encode(k.encode()).decode(), "value": base64.b64encode(v).decode()})


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
            "managedFields": [{
                "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": ts(),
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:containers": {}}},
            }],
        },
        "spec": {
            "nodeName": "node-%02d" % rnd.randint(0, 40),
            "containers": [{
                "name": app,
                "image": "registry.example/%s:v%d.%d.%d" % (app, rnd.randint(1, 3), rnd.randint(0, 20), rnd.randint(0, 9)),
                "resources": {"requests": {"cpu": "%dm" % rnd.choice([100, 250, 500]),
                                           "memory": "%dMi" % rnd.choice([128, 256, 512])}},
                "env": [{"name": "VAR_%d" % j, "value": uid()} for j in range(rnd.randint(2, 12))],
            }],
        },
        "status": {"phase": "Running", "startTime": ts(),
                   "podIP": "10.%d.%d.%d" % (rnd.randint(0, 255), rnd.randint(0, 255), rnd.randint(1, 254))},
    }
    return "/registry/pods/%s/%s" % (ns, name), body


writes, keys = [], []
for i in range(pods):
    key, body = pod(i)
    keys.append(key)
    writes.append((key, b"k8s\x00" + json.dumps(body).encode()))
    if i % 2 == 0:
        name = key.rsplit("/", 1)[1] + ".%x" % rnd.getrandbits(40)
        ev = {"kind": "Event", "metadata": {"name": name, "namespace": key.split("/")[3], "uid": uid()},
              "reason": rnd.choice(["Scheduled", "Pulled", "Created", "Started", "BackOff"]),
              "message": "Successfully assigned %s to node-%02d" % (key, rnd.randint(0, 40)),
              "firstTimestamp": ts(), "lastTimestamp": ts(), "count": rnd.randint(1, 9)}
        writes.append(("/registry/events/%s" % name, b"k8s\x00" + json.dumps(ev).encode()))
rewrites = [(key, b"k8s\x00" + json.dumps(pod(rnd.randint(0, pods))[1]).encode()) for key in keys[::5]]
with ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda kv: put(*kv), writes))
    list(pool.map(lambda kv: put(*kv), rewrites))
    list(pool.map(lambda k: call("/v3/kv/deleterange", {"key": base64.b64encode(k.encode()).decode()}), keys[1::10]))
