"""The boto3 peer, run as its own process so that its CPU time and peak RSS can be measured.

What a Python user would write: ``upload_file``/``download_file`` with TransferConfig defaults; for many
files a ThreadPoolExecutor of 8 over one shared client, for one file a single call (s3transfer then
splits it into parts itself). Checksums ``when_required``: boto3's default CRC32 trailers make an
aws-chunked body, which s3rver would store with the chunk framing in it.

Prints one JSON line: the S3 calls made by operation (a botocore ``before-call`` hook), objects, bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("operation", choices=("upload", "download"))
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--dir", required=True, help="local directory: the files to upload, or where to download")
    parser.add_argument("--threads", type=int, default=8, help="files in flight at once (1: a plain loop)")
    args = parser.parse_args(argv)

    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=args.endpoint_url, config=Config(
        request_checksum_calculation="when_required", response_checksum_validation="when_required"))
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def count(model: Any, **_: Any) -> None:
        with lock:
            counts[model.name] = counts.get(model.name, 0) + 1

    client.meta.events.register("before-call.s3.*", count)
    prefix = args.prefix.strip("/") + "/"
    jobs: list[tuple[str, str]] = []  # (local path, key)
    total = 0
    if args.operation == "upload":
        for name in sorted(os.listdir(args.dir)):
            path = os.path.join(args.dir, name)
            jobs.append((path, prefix + name))
            total += os.path.getsize(path)
    else:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=args.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                jobs.append((os.path.join(args.dir, obj["Key"][len(prefix):]), obj["Key"]))
                total += obj["Size"]

    def one(job: tuple[str, str]) -> None:
        path, key = job
        if args.operation == "upload":
            client.upload_file(path, args.bucket, key)
        else:
            client.download_file(args.bucket, key, path)

    if len(jobs) == 1 or args.threads <= 1:
        for job in jobs:
            one(job)
    else:
        with ThreadPoolExecutor(args.threads) as pool:
            for future in [pool.submit(one, job) for job in jobs]:
                future.result()
    print(json.dumps({"requests": counts, "objects": len(jobs), "bytes": total}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
