"""The Azure peer of tests/azure.rs: Microsoft's azure-storage-blob SDK on the same
Azurite. Usage: azure_peer.py CONNECTION_STRING COMMAND CONTAINER [ARGS...]

  create C                 create the container
  put C NAME FILE [K=V..]  upload FILE as NAME (a block blob), with metadata
  get C NAME FILE          download NAME into FILE
  list C                   committed blob names, one a line
  uncommitted C            names of blobs that exist with uncommitted blocks only
  meta C NAME              NAME's metadata as JSON
  blocks C NAME            NAME's committed block count
  sas C                    a container SAS token (read, write, list, delete)
"""
import datetime
import json
import sys

from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas


def main():
    conn, cmd, container, *args = sys.argv[1:]
    service = BlobServiceClient.from_connection_string(conn)
    c = service.get_container_client(container)
    if cmd == "create":
        c.create_container()
    elif cmd == "put":
        name, path, *pairs = args
        meta = dict(p.split("=", 1) for p in pairs)
        with open(path, "rb") as f:
            c.upload_blob(name, f, metadata=meta or None, overwrite=True)
    elif cmd == "get":
        name, path = args
        with open(path, "wb") as f:
            c.download_blob(name).readinto(f)
    elif cmd == "list":
        for b in c.list_blobs():
            print(b.name)
    elif cmd == "uncommitted":
        committed = {b.name for b in c.list_blobs()}
        for b in c.list_blobs(include=["uncommittedblobs"]):
            if b.name not in committed:
                print(b.name)
    elif cmd == "meta":
        print(json.dumps(c.get_blob_client(args[0]).get_blob_properties().metadata))
    elif cmd == "blocks":
        committed, _ = c.get_blob_client(args[0]).get_block_list("committed")
        print(len(committed))
    elif cmd == "sas":
        parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
        print(
            generate_container_sas(
                parts["AccountName"],
                container,
                account_key=parts["AccountKey"],
                permission=ContainerSasPermissions(read=True, write=True, list=True, delete=True),
                expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1),
            )
        )
    else:
        sys.exit(f"unknown command {cmd}")


main()
