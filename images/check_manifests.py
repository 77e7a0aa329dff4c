"""Validates every Kubernetes manifest in images/ against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields are errors). The containers embedded as
strings in the KubermaticConfiguration are validated as a Pod's containers.
Usage: python images/check_manifests.py FILE...   (scripts/test.sh runs it)
"""
import sys

import kubernetes_validate
import yaml

VERSION = "1.30.0"


def check(obj, where):
    try:
        kubernetes_validate.validate(obj, VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        sys.exit(f"{where}: {e.message} at {'.'.join(str(p) for p in e.path)}")


def as_pod(container, volumes):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
            "spec": {"containers": [container], "volumes": volumes}}


# The validator itself must reject a broken object, or this check proves nothing.
try:
    kubernetes_validate.validate(as_pod({"name": "x", "image": "x", "notAField": 1}, []), VERSION, strict=True)
    sys.exit("kubernetes-validate accepted an invalid Pod: the check is broken")
except kubernetes_validate.ValidationError:
    pass

count = 0
for path in sys.argv[1:]:
    for i, doc in enumerate(yaml.safe_load_all(open(path))):
        if doc is None:
            continue
        where = f"{path} document {i}"
        if doc.get("kind") == "KubermaticConfiguration":
            for field in ("backupStoreContainer", "backupDeleteContainer"):
                container = yaml.safe_load(doc["spec"]["seedController"][field])
                check(as_pod(container, [{"name": "etcd-backup", "emptyDir": {}}]), f"{where} {field}")
                count += 1
        else:
            check(doc, where)
            count += 1
print(f"{count} Kubernetes objects valid (Kubernetes {VERSION} schemas, strict)")
