"""The SDK side of benches/emulators.sh: one plain transfer with Microsoft's or
Google's Python client, as their users write it.

Usage: emulator_sdk.py azure CONNECTION_STRING create|up|down|delete CONTAINER [NAME FILE CONCURRENCY]
       emulator_sdk.py gcs HOST:PORT create|up|down|delete BUCKET [NAME FILE]

azure up/down: `upload_blob(f, max_concurrency=N)` / `download_blob(max_concurrency=N).readinto(f)`
(the SDK's default block and range sizes). gcs up/down: `blob.upload_from_filename` /
`blob.download_to_filename` (the SDK's defaults: a resumable upload in 100 MiB chunks,
one GET with its checksum check), through `STORAGE_EMULATOR_HOST` with no credentials.
"""
import os
import sys


def azure(conn, cmd, container, *args):
    from azure.storage.blob import BlobServiceClient

    c = BlobServiceClient.from_connection_string(conn).get_container_client(container)
    if cmd == "create":
        c.create_container()
    elif cmd == "up":
        name, path, conc = args
        with open(path, "rb") as f:
            c.upload_blob(name, f, overwrite=True, max_concurrency=int(conc))
    elif cmd == "down":
        name, path, conc = args
        with open(path, "wb") as f:
            c.download_blob(name, max_concurrency=int(conc)).readinto(f)
    elif cmd == "delete":
        c.delete_blob(args[0])


def gcs(host, cmd, bucket, *args):
    os.environ["STORAGE_EMULATOR_HOST"] = "http://" + host
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    c = storage.Client(project="bench", credentials=AnonymousCredentials())
    if cmd == "create":
        c.create_bucket(bucket)
        return
    b = c.bucket(bucket)
    if cmd == "up":
        b.blob(args[0]).upload_from_filename(args[1])
    elif cmd == "down":
        b.blob(args[0]).download_to_filename(args[1])
    elif cmd == "delete":
        b.blob(args[0]).delete()


{"azure": azure, "gcs": gcs}[sys.argv[1]](*sys.argv[2:])
