"""Trust boundaries end to end: nothing a repository or a shared store contains decides where credentials go.

A listener on 127.0.0.1 records every request it gets (with its headers): it stands for a host that an
attacker with write access to the bucket, or a pull request to the repository, would like the cloner's
credentials sent to. Real git, real git-lfs, the agent as `install` wires it, a moto server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.conftest import Git, bucket_objects, commit_all, new_bucket, sha256
from tests.e2e.test_linked import put
from tests.s3server import MotoServer

MakeClone = Callable[..., Git]


class Listener:
    """An HTTP server on 127.0.0.1 that records each request's method, path and headers, and answers 404."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                seen.append((self.command, self.path, dict(self.headers.items())))
                body = b"<Error><Code>NoSuchKey</Code><Message>no</Message></Error>"
                self.send_response(404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = _record  # noqa: N815

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    with Listener() as server:
        yield server


def linked_push(make_clone: MakeClone, s3: MotoServer) -> tuple[Git, str, str, bytes]:
    """Clone a links one original (on the store's own endpoint) without downloading it, and pushes."""
    source = new_bucket(s3, "src")
    data = os.urandom(3000)
    put(s3, source, "tiles/t0.laz", data)  # with its SHA-256, in a way every store takes
    a = make_clone("a")
    # --hash-missing: stores that keep no checksums (Ceph RGW 16) can link too
    a.agent("link", f"s3://{source}/tiles/t0.laz", "--to", "data", "--no-checkout", "--hash-missing",
            "--source-endpoint-url", s3.endpoint)
    commit_all(a, "link")
    a.run("push", "-q", "origin", "HEAD:main")
    return a, source, sha256(data), data


def rewrite_record(s3: MotoServer, bucket: str, oid: str, **changes: Any) -> None:
    key = f"repo/links/{oid[0:2]}/{oid[2:4]}/{oid}.json"
    client = s3.client()
    record = json.loads(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    record.update(changes)
    body = json.dumps(record).encode()
    client.put_object(Bucket=bucket, Key=key, Body=body,  # a precomputed checksum: no trailer (RGW over https)
                      ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode())


@pytest.mark.parametrize("unsigned", [False, True])
def test_a_record_naming_another_host_gets_nothing_sent_there(make_clone: MakeClone, s3: MotoServer, bucket: str,
                                                              listener: Listener, unsigned: bool) -> None:
    _, source, oid, _ = linked_push(make_clone, s3)
    rewrite_record(s3, bucket, oid, endpoint_url=listener.endpoint, unsigned=unsigned)
    b = make_clone("b")
    proc = b.try_("lfs", "pull", env={"AWS_SESSION_TOKEN": "session-token-of-the-cloner"})
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert listener.requests == []  # not one request: no Authorization, no X-Amz-Security-Token, nothing
    assert "[51]" in output and listener.endpoint in output
    assert f"git config lfs-s3-source.{source}.endpoint-url {listener.endpoint}" in output
    # Nothing of the bad record was kept in the clone (it is kept only once its original's bytes matched).
    assert not (b.path / ".git" / "lfs-s3-agent" / "links" / f"{oid}.json").exists()


def test_an_instance_metadata_address_in_a_record_is_refused(make_clone: MakeClone, s3: MotoServer,
                                                             bucket: str) -> None:
    _, _, oid, _ = linked_push(make_clone, s3)
    rewrite_record(s3, bucket, oid, endpoint_url="http://169.254.169.254")
    b = make_clone("b")
    proc = b.try_("lfs", "pull")
    assert proc.returncode != 0 and "[51]" in proc.stdout + proc.stderr  # refused before any connection


def test_the_committed_file_cannot_choose_the_profile_or_weaken_tls_and_git_push_says_so(
        make_clone: MakeClone, bucket: str) -> None:
    a = make_clone("a")  # settings in local git config: bucket, prefix, endpoint
    (a.path / ".lfs-s3-agent.toml").write_text('profile = "production"\ntls_verify = "false"\n')
    a.run("lfs", "track", "*.bin")
    (a.path / "x.bin").write_bytes(os.urandom(1000))
    commit_all(a, "x")
    proc = a.try_("push", "origin", "HEAD:main")
    assert proc.returncode == 0, proc.stderr  # the profile was ignored: had it been used, no such profile
    assert "sets profile, which only your own configuration may set: ignored" in proc.stderr
    assert "lfs-s3-agent install --profile VALUE" in proc.stderr
    assert "sets tls_verify" in proc.stderr


def test_an_endpoint_changed_by_a_commit_is_refused_until_install_accepts_it(
        make_clone: MakeClone, s3: MotoServer, bucket: str, listener: Listener) -> None:
    a = make_clone("a", install=False)
    a.agent("install", "--bucket", bucket, "--prefix", "repo", "--endpoint-url", s3.endpoint, "--save")
    a.run("lfs", "track", "*.bin")
    (a.path / "x.bin").write_bytes(os.urandom(1000))
    commit_all(a, "x")
    a.run("push", "-q", "origin", "HEAD:main")
    settings_file = a.path / ".lfs-s3-agent.toml"
    settings_file.write_text(settings_file.read_text().replace(s3.endpoint, listener.endpoint))
    commit_all(a, "a pull request changed the endpoint")
    (a.path / "y.bin").write_bytes(os.urandom(1000))
    commit_all(a, "y")
    proc = a.try_("push", "origin", "HEAD:main")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert listener.requests == []
    assert listener.endpoint in output and s3.endpoint in output and "lfs-s3-agent install" in output
    accepted = a.agent("install")  # the user reviews the change and accepts it
    assert listener.endpoint in accepted.stdout


def test_control_characters_from_the_store_are_escaped(make_clone: MakeClone, s3: MotoServer, bucket: str) -> None:
    a = make_clone("a")
    s3.client().put_object(Bucket=bucket, Key="repo/evil\x1b[2J\x1b]0;pwned\x07.txt", Body=b"x")
    out = a.agent("ls").stdout
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J" in out


def test_gc_refuses_a_grace_shorter_than_a_push(make_clone: MakeClone) -> None:
    a = make_clone("a")
    proc = a.agent("gc", "--force", "--grace", "10m", check=False)
    assert proc.returncode != 0 and "--allow-short-grace" in proc.stderr


def test_pushing_objects_younger_than_any_grace_writes_no_keep_marker(make_clone: MakeClone, s3: MotoServer,
                                                                     bucket: str) -> None:
    """Keep markers cost a request: only skipped objects older than an hour get one (tests/functional covers
    the old case and gc's side)."""
    a = make_clone("a")
    a.run("lfs", "track", "*.bin")
    data = os.urandom(2000)
    (a.path / "x.bin").write_bytes(data)
    commit_all(a, "x")
    a.run("push", "-q", "origin", "HEAD:main")
    a.run("lfs", "push", "--all", "origin")  # every object is skipped: stored moments ago
    assert not any("/keep/" in k for k in bucket_objects(s3, bucket))
