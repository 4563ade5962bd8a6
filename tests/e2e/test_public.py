"""Open projects and cold storage (issue 16), end to end through real git-lfs.

- A public project: the store's keys mirrored to a static HTTP server on 127.0.0.1 (``public_url``),
  and moto read unsigned (``no_sign_request``), cloned and pulled with no AWS credentials at all.
- Archived objects: moto's GLACIER objects through a pull (restore requested, ``[49]``), ``restore``,
  ``restore --status`` and a pull that succeeds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Git, bucket_objects, commit_all, new_bucket, tree_digests, write_files
from tests.s3server import MotoServer

NO_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                  "AWS_DEFAULT_PROFILE")


class Mirror:
    """A static server of a directory (the store's keys as files), with byte ranges; records every request."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.serve(body=False)

            def do_GET(self) -> None:
                self.serve(body=True)

            def serve(self, body: bool) -> None:
                mirror.requests.append((self.command, self.path, dict(self.headers.items())))
                path = (mirror.root / self.path.lstrip("/")).resolve()
                if mirror.root.resolve() not in path.parents or not path.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = path.read_bytes()
                etag = '"' + hashlib.md5(data).hexdigest() + '"'
                start, end, status = 0, len(data) - 1, 200
                found = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if found:
                    start = int(found[1])
                    end = min(int(found[2]) if found[2] else len(data) - 1, len(data) - 1)
                    status = 206
                self.send_response(status)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(end - start + 1))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                if body:
                    self.wfile.write(data[start:end + 1])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def copy_bucket(self, s3: MotoServer, bucket: str) -> None:
        """Mirror the bucket's keys (as a sync job behind a CDN would)."""
        client = s3.client()
        for key in bucket_objects(s3, bucket):
            target = self.root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Mirror]:
    m = Mirror(tmp_path / "mirror")
    m.root.mkdir()
    m.thread.start()
    yield m
    m.server.shutdown()
    m.server.server_close()


def without_credentials(git: Git, tmp_path: Path) -> Git:
    for name in NO_CREDENTIALS:
        git.env.pop(name, None)
    git.env.update({"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
                    "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials")})
    return git


FILES = {"small.bin": os.urandom(3000), "nested/medium.bin": os.urandom(200_000),
         "big.bin": os.urandom(12 << 20)}  # above the 5 MiB multipart threshold: parallel ranges


def publish(make_clone: Any, s3: MotoServer, bucket: str) -> Git:
    writer = make_clone("writer", multipart_threshold="5MiB", part_size="5MiB")
    writer.run("lfs", "track", "*.bin")
    write_files(writer.path, FILES)
    commit_all(writer, "data")
    writer.run("push", "-q", "origin", "HEAD:main")
    return writer


def test_public_url_clone_without_credentials(make_clone: Any, s3: MotoServer, bucket: str, mirror: Mirror,
                                              tmp_path: Path) -> None:
    writer = publish(make_clone, s3, bucket)
    mirror.copy_bucket(s3, bucket)
    # The reader's settings: the store and its public URL; no credentials anywhere in its environment.
    reader = make_clone("reader", public_url=mirror.url, multipart_threshold="5MiB", part_size="5MiB")
    without_credentials(reader, tmp_path)
    reader.run("checkout", "-q", "main")
    reader.run("lfs", "pull")
    assert tree_digests(reader.path) == tree_digests(writer.path)
    gets = [r for r in mirror.requests if r[0] == "GET"]
    assert gets and all("Authorization" not in h and "X-Amz-Security-Token" not in h for _, _, h in gets)
    assert any("Range" in h for _, _, h in gets), "the large object came in ranges"
    # What needs credentials says so.
    write_files(reader.path, {"new.bin": os.urandom(100)})
    commit_all(reader, "new")
    push = reader.try_("push", "origin", "HEAD:other")
    assert push.returncode != 0
    assert "[46]" in push.stderr + push.stdout and "credentials" in (push.stderr + push.stdout).lower()


def test_public_url_missing_object_is_43(make_clone: Any, s3: MotoServer, bucket: str, mirror: Mirror,
                                         tmp_path: Path) -> None:
    publish(make_clone, s3, bucket)  # nothing mirrored
    reader = without_credentials(make_clone("reader", public_url=mirror.url), tmp_path)
    reader.run("checkout", "-q", "main")
    pull = reader.try_("lfs", "pull")
    assert pull.returncode != 0 and "[43]" in pull.stderr + pull.stdout


def test_unsigned_store_reads(make_clone: Any, s3: MotoServer, bucket: str, tmp_path: Path) -> None:
    writer = publish(make_clone, s3, bucket)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                      "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    s3.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))  # a public bucket
    reader = without_credentials(make_clone("reader", no_sign_request="true", multipart_threshold="5MiB",
                                            part_size="5MiB"), tmp_path)
    reader.run("checkout", "-q", "main")
    reader.run("lfs", "pull")
    assert tree_digests(reader.path) == tree_digests(writer.path)
    write_files(reader.path, {"new.bin": os.urandom(100)})
    commit_all(reader, "new")
    push = reader.try_("push", "origin", "HEAD:other")
    assert push.returncode != 0 and "needs AWS credentials" in push.stderr + push.stdout


@pytest.mark.moto_only("GLACIER objects restored on request: RGW 16 has no archive storage class to restore from")
def test_glacier_pull_restore_status_then_pull(make_clone: Any, s3: MotoServer, bucket: str) -> None:
    writer = make_clone("writer", storage_class="GLACIER")
    writer.run("lfs", "track", "*.bin")
    write_files(writer.path, {"a.bin": b"alpha" * 100, "b/b.bin": b"beta" * 100, "c.bin": b"gamma" * 100})
    commit_all(writer, "data")
    writer.run("push", "-q", "origin", "HEAD:main")
    client = s3.client()
    assert {client.head_object(Bucket=bucket, Key=k).get("StorageClass") for k in bucket_objects(s3, bucket)} == \
        {"GLACIER"}

    reader = make_clone("reader")
    reader.run("checkout", "-q", "main")
    # A pull of one archived object: its restore is requested, the object fails with [49].
    pull = reader.try_("lfs", "pull", "--include", "a.bin")
    out = pull.stderr + pull.stdout
    assert pull.returncode != 0 and "[49]" in out and "restore" in out and "pull again" in out, out
    # moto restores at once: the next pull of it succeeds.
    reader.run("lfs", "pull", "--include", "a.bin")
    assert (reader.path / "a.bin").read_bytes() == b"alpha" * 100

    # verify: archived objects are present, not readable yet (not a failure); copy skips them with a count.
    verify = reader.agent("verify")
    assert "2 archived" in verify.stdout and "ARCHIVED: b/b.bin" in verify.stdout, verify.stdout
    dest = new_bucket(s3, "dest")
    copied = reader.agent("copy", f"s3://{dest}/repo")
    assert "2 archived skipped" in copied.stdout, copied.stdout + copied.stderr

    status = reader.agent("restore", "--status")
    assert "ARCHIVED: b/b.bin" in status.stdout and "ARCHIVED: c.bin" in status.stdout, status.stdout
    assert "1 restored" in status.stdout and "2 archived without a restore" in status.stdout
    only_b = reader.agent("restore", "b/")
    assert "1 requested now" in only_b.stdout, only_b.stdout
    reader.agent("restore")
    done = reader.agent("restore", "--status", "--json")
    report = json.loads(done.stdout)
    assert report["ready"] and report["restored"] == 3 and report["requested"] == 0
    reader.run("lfs", "pull")
    assert tree_digests(reader.path) == tree_digests(writer.path)


def test_doctor_checks_the_public_url(make_clone: Any, s3: MotoServer, bucket: str) -> None:
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                      "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    s3.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    # The bucket's own public endpoint (path style) as the public URL.
    clone = make_clone("doc", public_url=f"{s3.endpoint}/{bucket}")
    doctor = json.loads(clone.agent("doctor", "--json", check=False).stdout)
    public = [c for c in doctor["checks"] if c["name"] == "public url"]
    assert public and public[0]["status"] == "ok", doctor
