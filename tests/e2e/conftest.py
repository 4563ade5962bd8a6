"""End-to-end fixtures: a moto S3 server process on 127.0.0.1 and git repositories wired to it.

The agent is started by git-lfs itself, exactly as `lfs-s3-agent install` configures it.

Another S3 implementation instead of moto: set ``LFS_S3_TEST_ENDPOINT`` (with ``LFS_S3_TEST_ACCESS_KEY``,
``LFS_S3_TEST_SECRET_KEY``, and ``LFS_S3_TEST_CA_BUNDLE`` for https; optionally ``LFS_S3_TEST_IMPL``, e.g.
``rgw``, and ``LFS_S3_TEST_CHECKSUMS``, the checksum mode of the tests' own boto3 client there). The session
fixture ``s3`` then points at that endpoint (see ``ExternalS3``); ``tests/interop/run.py`` does this with a
local Ceph RGW. Tests that need something only moto has are marked ``@pytest.mark.moto_only("why")`` and are
skipped, with that reason, on any other endpoint; tests that need stored checksums are skipped on RGW
(``NEEDS_STORED_CHECKSUMS``), with the reason.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.s3proxy import CountingProxy
from tests.s3server import MotoServer

pytestmark = pytest.mark.e2e

if shutil.which("git-lfs") is None:
    # Not a skip: CI installs git-lfs (see .ci/run and `make test`); its absence is a failure.
    raise RuntimeError("git-lfs is not installed: `apt-get install git-lfs` (make test does this as root)")


# Read once at import: the autouse ``_isolated_env`` fixture removes every LFS_S3_* variable per test.
EXTERNAL_ENDPOINT = os.environ.get("LFS_S3_TEST_ENDPOINT", "")
EXTERNAL_ENV = {k: v for k, v in os.environ.items() if k.startswith("LFS_S3_TEST_")}
#: Which S3 implementation the e2e tier runs against: "moto" (default), or LFS_S3_TEST_IMPL ("rgw"...).
S3_IMPL = "moto" if not EXTERNAL_ENDPOINT else EXTERNAL_ENV.get("LFS_S3_TEST_IMPL", "external")
ON_RGW = S3_IMPL == "rgw"
EXTERNAL_HTTPS = EXTERNAL_ENDPOINT.startswith("https:")


#: Tests that read an oid from the store's checksums need a store that keeps them. Ceph RGW 16 keeps none
#: (linked mode there needs `link --hash-missing`, which the trust and interop tests use): skipped there.
NEEDS_STORED_CHECKSUMS = pytest.mark.skipif(
    ON_RGW, reason="needs a store that keeps full-object SHA-256 checksums (RGW 16 keeps none: linked mode there "
                   "takes --hash-missing; doctor's store check shows it)")


class ExternalS3:
    """The ``MotoServer`` interface for an S3 endpoint started elsewhere (LFS_S3_TEST_ENDPOINT)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.endpoint = env["LFS_S3_TEST_ENDPOINT"]
        missing = [k for k in ("LFS_S3_TEST_ACCESS_KEY", "LFS_S3_TEST_SECRET_KEY") if not env.get(k)]
        if self.endpoint.startswith("https:") and not env.get("LFS_S3_TEST_CA_BUNDLE"):
            missing.append("LFS_S3_TEST_CA_BUNDLE")
        if missing:
            raise RuntimeError(f"LFS_S3_TEST_ENDPOINT is set but {', '.join(missing)} is not")
        self.access_key = env["LFS_S3_TEST_ACCESS_KEY"]
        self.secret_key = env["LFS_S3_TEST_SECRET_KEY"]
        self.ca_bundle: str | None = env.get("LFS_S3_TEST_CA_BUNDLE") or None
        self.checksums: str | None = env.get("LFS_S3_TEST_CHECKSUMS") or None
        self.ops_log = Path(env["LFS_S3_TEST_OPS_LOG"]) if env.get("LFS_S3_TEST_OPS_LOG") else None

    def client(self, **kwargs: Any) -> Any:
        import boto3
        from botocore.config import Config

        config = kwargs.pop("config", None)
        if self.checksums:
            mode = Config(request_checksum_calculation=self.checksums, response_checksum_validation=self.checksums)
            config = mode.merge(config) if config else mode
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", config=config,
                            aws_access_key_id=kwargs.pop("key", self.access_key),
                            aws_secret_access_key=kwargs.pop("secret", self.secret_key),
                            verify=kwargs.pop("verify", self.ca_bundle), **kwargs)

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def __enter__(self) -> ExternalS3:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("moto_only")
    if marker is None:
        return
    if not marker.args or not str(marker.args[0]).strip():
        raise pytest.UsageError(f"{item.nodeid}: moto_only needs a reason: @pytest.mark.moto_only(\"why\")")
    if S3_IMPL != "moto":
        pytest.skip(f"moto only ({S3_IMPL} at {EXTERNAL_ENDPOINT}): {marker.args[0]}")


@pytest.fixture(autouse=True)
def _s3_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never ask an EC2 metadata service; against another endpoint, its keys and CA.

    ``LFS_S3_TEST_CHECKSUMS`` is for the tests' own boto3 client only: the agent runs with its default
    checksum mode everywhere (its requests carry their SHA-256 in a header, never boto3's trailer).
    """
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if not EXTERNAL_ENDPOINT:
        return
    external = ExternalS3(EXTERNAL_ENV)
    for name, value in external.env().items():
        monkeypatch.setenv(name, value)
    if external.ca_bundle:  # what `install` run directly by a test uses (make_clone passes --ca-bundle too)
        monkeypatch.setenv("LFS_S3_CA_BUNDLE", external.ca_bundle)


@pytest.fixture(scope="session")
def s3() -> Iterator[MotoServer]:
    if EXTERNAL_ENDPOINT:
        yield ExternalS3(EXTERNAL_ENV)  # type: ignore[misc]
        return
    with MotoServer() as server:
        yield server


def new_bucket(s3: MotoServer, stem: str) -> str:
    """A fresh, uniquely named bucket on the server."""
    name = f"{stem}-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket(s3: MotoServer) -> str:
    return new_bucket(s3, "lfs")


@pytest.fixture
def source(s3: MotoServer) -> str:
    """A source bucket of originals (linked mode, import), separate from the LFS bucket."""
    return new_bucket(s3, "src")


@pytest.fixture
def proxy(s3: MotoServer) -> Iterator[CountingProxy]:
    """A recording proxy in front of the server (``tests/e2e/s3proxy.py``)."""
    with CountingProxy(s3.endpoint, ca_bundle=getattr(s3, "ca_bundle", None)) as p:
        yield p


class Git:
    """Runs git in one directory; ``run`` checks, ``try_`` returns the CompletedProcess."""

    def __init__(self, path: Path, env: dict[str, str] | None = None) -> None:
        self.path = path
        self.env = {**os.environ, **(env or {})}

    def try_(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=cwd or self.path, capture_output=True, text=True,
                              env={**self.env, **(env or {})}, input=input, timeout=600)

    def run(self, *args: str, **kwargs: Any) -> str:
        proc = self.try_(*args, **kwargs)
        assert proc.returncode == 0, f"git {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start git in the background (stdout and stderr piped): for tests that act mid-command."""
        return subprocess.Popen(["git", *args], cwd=self.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**self.env, **(env or {})})

    def agent(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "lfs_s3_agent", *args], cwd=cwd or self.path,
                              capture_output=True, text=True, env=self.env, timeout=600)
        if check:
            assert proc.returncode == 0, f"lfs-s3-agent {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare git remote on disk."""
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


@pytest.fixture
def make_clone(tmp_path: Path, remote: Path, s3: MotoServer, bucket: str) -> Any:
    """Factory: a fresh clone of ``remote`` with the agent installed against ``bucket``."""

    def factory(name: str, *, prefix: str = "repo", install: bool = True, **flags: str) -> Git:
        path = tmp_path / name
        env = {"GIT_LFS_SKIP_SMUDGE": "1"}
        subprocess.run(["git", "clone", "-q", str(remote), str(path)], check=True, env={**os.environ, **env},
                       capture_output=True)
        git = Git(path)
        if install:
            args = ["install", "--bucket", flags.pop("bucket", bucket), "--prefix", prefix,
                    "--endpoint-url", flags.pop("endpoint_url", s3.endpoint)]
            ca_bundle = getattr(s3, "ca_bundle", None)
            if ca_bundle and "ca_bundle" not in flags:
                args += ["--ca-bundle", ca_bundle]
            for key, value in flags.items():
                args += [f"--{key.replace('_', '-')}", value]
            git.agent(*args)
        return git

    return factory


# -- helpers shared by the e2e tests ---------------------------------------------------------------

#: What the agent logs per upload request at level info (LFS_S3_LOG_LEVEL=info, LFS_S3_LOG_FILE=...).
UPLOAD_LOG = re.compile(r"\b(uploaded|already stored) ([0-9a-f]{64}) \((\d+) bytes\)")
POINTER = re.compile(rb"version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_key(prefix: str, oid: str) -> str:
    """The documented layout, written out independently of the agent's code."""
    return f"{prefix}/{oid[0:2]}/{oid[2:4]}/{oid}"


def write_files(root: Path, files: Mapping[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def tree_digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file in a working tree (relative POSIX path -> hex), ``.git`` excluded."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            if name == ".git":  # a worktree's .git file
                continue
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = sha256_file(path)
    return out


def lfs_oids(files: Mapping[str, bytes]) -> set[str]:
    """The LFS objects a set of tracked files produces (git-lfs keeps empty files as empty blobs)."""
    return {sha256(data) for data in files.values() if data}


def bucket_objects(server: MotoServer, bucket: str, client: Any = None) -> dict[str, dict[str, Any]]:
    """Every object in the bucket: key -> {"Size", "LastModified", "ETag"}."""
    client = client or server.client()
    out: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = {"Size": obj["Size"], "LastModified": obj["LastModified"], "ETag": obj["ETag"]}
    return out


def read_upload_log(path: Path) -> list[tuple[str, str, int]]:
    """(action, oid, size) for each upload the agents logged; action is "uploaded" or "already stored"."""
    if not path.exists():
        return []
    return [(m[1], m[2], int(m[3])) for m in UPLOAD_LOG.finditer(path.read_text(encoding="utf-8"))]


def log_env(path: Path) -> dict[str, str]:
    return {"LFS_S3_LOG_LEVEL": "info", "LFS_S3_LOG_FILE": str(path)}


def pointer_oid(data: bytes) -> str | None:
    match = POINTER.fullmatch(data)
    return match[1].decode() if match else None


def leftover_tmp_files(lfs_dir: Path) -> list[str]:
    """Files under ``lfs/tmp`` that hold bytes or that the agent created.

    git-lfs 3.3 itself leaves empty, numerically named files there even after a successful pull;
    anything else (a non-empty file, or one of ours) is a leaked download.
    """
    tmp = lfs_dir / "tmp"
    found = []
    for path in tmp.rglob("*") if tmp.exists() else ():
        if path.is_file() and (path.stat().st_size > 0 or not path.name.isdigit()):
            found.append(f"{path.relative_to(lfs_dir)} ({path.stat().st_size} bytes)")
    return found


def git_common_dir(git: Git, cwd: Path | None = None) -> Path:
    return Path(git.run("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=cwd).strip())


def local_config(git: Git, cwd: Path | None = None) -> list[str]:
    """``git config --local --list`` as sorted ``key=value`` lines.

    Sorted because git-lfs writes its four ``filter.lfs.*`` keys in random order (a Go map).
    """
    proc = git.try_("config", "--local", "--list", cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    return sorted(proc.stdout.splitlines())


def remote_heads(remote: Path) -> dict[str, str]:
    out = subprocess.run(["git", "ls-remote", "--heads", str(remote)], capture_output=True, text=True,
                         check=True).stdout
    return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())}


def known_store(git: Git) -> None:
    """Have the clone know what its store does (``doctor`` probes and records it), so that the requests a
    test counts next are only its transfers' (the agent otherwise probes before its first upload)."""
    git.agent("doctor", "--json", check=False)
    assert (git_common_dir(git) / "lfs-s3-agent" / "capabilities.json").is_file()


def commit_all(git: Git, message: str, cwd: Path | None = None) -> None:
    git.run("add", "-A", cwd=cwd)
    git.run("commit", "-qm", message, cwd=cwd)


# -- a second moto server with authentication switched on --------------------------------------------

@dataclass(frozen=True)
class AuthServer:
    server: MotoServer
    key: str
    secret: str

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def client(self) -> Any:
        return self.server.client(key=self.key, secret=self.secret)

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret}


@pytest.fixture(scope="session")
def auth_s3(s3: MotoServer) -> Iterator[AuthServer]:
    """Its own moto server (auth on the shared one would break every other test).

    Another endpoint checks credentials anyway: the shared one, with its own keys, serves.
    """
    from tests.s3server import create_iam_access_key, enable_auth

    if isinstance(s3, ExternalS3):
        yield AuthServer(s3, s3.access_key, s3.secret_key)  # type: ignore[arg-type]
        return
    with MotoServer() as server:
        key, secret = create_iam_access_key(server)
        enable_auth(server)
        yield AuthServer(server, key, secret)
