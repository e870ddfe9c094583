"""Oracle of tests/object_store.rs: zarr-python's view of Zarr stores kept in an S3-compatible
server (moto, started by the test on 127.0.0.1), moved between the server and local folders
with boto3.

usage:
  s3_oracle.py bucket ENDPOINT BUCKET             create a bucket
  s3_oracle.py put ENDPOINT URL NPY FORMAT CHUNK  zarr-python writes the .npy array as a Zarr
                                                  array of FORMAT (2 or 3), CHUNK rows a chunk,
                                                  zstd, and uploads it to URL (s3://bucket/key)
  s3_oracle.py same ENDPOINT URL LOCAL            downloads URL; zarr-python reads it and the
                                                  local Zarr array LOCAL: prints "same" when the
                                                  shape, dtype and every bit agree, else why not
  s3_oracle.py delete ENDPOINT URL                deletes the one object at URL
"""

import os
import sys
import tempfile

import boto3
import numpy as np
import zarr


def client(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


def split(url):
    assert url.startswith("s3://"), url
    bucket, _, key = url[len("s3://"):].partition("/")
    return bucket, key.strip("/")


def upload(s3, folder, url):
    bucket, prefix = split(url)
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            s3.upload_file(path, bucket, f"{prefix}/{rel}")


def download(s3, url, folder):
    bucket, prefix = split(url)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    n = 0
    for page in pages:
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) + 1:]
            path = os.path.join(folder, *rel.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            s3.download_file(bucket, obj["Key"], path)
            n += 1
    return n


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, endpoint, args = argv[0], argv[1], argv[2:]
    s3 = client(endpoint)
    if cmd == "bucket":
        s3.create_bucket(Bucket=args[0])
    elif cmd == "put":
        url, npy, fmt, chunk = args[0], args[1], int(args[2]), int(args[3])
        data = np.load(npy)
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "a.zarr")
            chunks = (chunk,) + data.shape[1:]
            if fmt == 2:
                from numcodecs import Zstd

                z = zarr.create_array(local, shape=data.shape, chunks=chunks, dtype=data.dtype,
                                      zarr_format=2, compressors=Zstd(level=3))
            else:
                z = zarr.create_array(local, shape=data.shape, chunks=chunks, dtype=data.dtype,
                                      zarr_format=3, compressors=zarr.codecs.ZstdCodec(level=3))
            z[...] = data
            upload(s3, local, url)
    elif cmd == "same":
        url, local = args
        with tempfile.TemporaryDirectory() as tmp:
            if download(s3, url, tmp) == 0:
                print(f"nothing under {url}")
                return 0
            node = zarr.open(tmp, mode="r")
            want_node = zarr.open(local, mode="r")
            names = sorted(dict(want_node.arrays())) if isinstance(want_node, zarr.Group) else [None]
            for name in names:
                got = (node[name] if name else node)[...]
                want = (want_node[name] if name else want_node)[...]
                if got.shape != want.shape or got.dtype != want.dtype:
                    print(f"{name}: {got.shape} {got.dtype}, want {want.shape} {want.dtype}")
                    return 0
                if got.tobytes() != want.tobytes():
                    bad = int(np.count_nonzero(got != want))
                    print(f"{name}: {bad} elements differ")
                    return 0
        print("same")
    elif cmd == "delete":
        bucket, key = split(args[0])
        s3.delete_object(Bucket=bucket, Key=key)
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
