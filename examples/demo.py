"""End-to-end demo of lfs-s3-agent on this machine, with nothing to set up but git-lfs.

Run it with ``make demo`` (or ``.venv/bin/python examples/demo.py [--keep]`` from the repo root).
It starts a local S3 server (moto) on 127.0.0.1, creates a bucket, a bare git remote and a
repository wired to the bucket with ``lfs-s3-agent install --save``, commits a few files of a
few KiB to 20 MiB as LFS objects and pushes them (git-lfs starts the agent, which PUTs them to
S3), then clones the remote afresh with ``lfs-s3-agent clone`` and checks every file is
byte-identical. Everything runs under a throwaway HOME with fake credentials, so neither your
git identity nor your AWS configuration is used or touched. Exits non-zero if any step fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.s3server import TEST_ENV, MotoServer  # noqa: E402  (needs the repo root on sys.path)

BUCKET = "lfs-demo"
PREFIX = "demo"
MIB = 1 << 20

#: (path in the repository, size in bytes): LFS objects, tracked by extension below.
FILES: tuple[tuple[str, int], ...] = (
    ("logo.png", 6 * 1024),
    ("docs/manual.pdf", 300 * 1024),
    ("assets/sound/intro clip.wav", 3 * MIB + 12345),
    ("video.mp4", 7 * MIB + 512 * 1024),
    ("data/model weights.bin", 20 * MIB),
)
PATTERNS = ("*.png", "*.pdf", "*.wav", "*.mp4", "*.bin")


class DemoError(Exception):
    """A step failed; the message says which and why."""


class Demo:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.home = work / "home"
        self.home.mkdir(parents=True)
        self.env = self._isolated_env()
        self.step_no = 0

    def _isolated_env(self) -> dict[str, str]:
        """The environment of every subprocess: fake AWS credentials, a throwaway HOME and git identity."""
        keep_git = ("GIT_TRACE", "GIT_TRACE_PACKET", "GIT_CURL_VERBOSE")
        env = {
            name: value for name, value in os.environ.items()
            if not name.startswith(("AWS_", "LFS_S3_")) and (not name.startswith("GIT_") or name in keep_git)
        }
        # The agent's log settings are not S3 settings: let the user turn them on for the demo.
        env.update({n: os.environ[n] for n in ("LFS_S3_LOG_LEVEL", "LFS_S3_LOG_FILE") if n in os.environ})
        env.update(TEST_ENV)
        env.update({
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "lfs-s3-agent demo",
            "GIT_AUTHOR_EMAIL": "demo@example.invalid",
            "GIT_COMMITTER_NAME": "lfs-s3-agent demo",
            "GIT_COMMITTER_EMAIL": "demo@example.invalid",
            "AWS_CONFIG_FILE": str(self.home / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "GIT_TERMINAL_PROMPT": "0",
        })
        return env

    # -- helpers --------------------------------------------------------------------------------

    def step(self, text: str) -> None:
        self.step_no += 1
        print(f"{self.step_no:2}. {text}", flush=True)

    @staticmethod
    def info(text: str) -> None:
        for line in text.rstrip("\n").splitlines():
            print(f"      {line}", flush=True)

    def run(self, args: Sequence[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> str:
        """Run a command; on failure raise DemoError with its output."""
        try:
            proc = subprocess.run(list(args), cwd=cwd, env={**self.env, **(env or {})}, capture_output=True,
                                  text=True, timeout=900, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DemoError(f"{what}: {exc}") from None
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip() or "(no output)"
            shown = " ".join(a if " " not in a else repr(a) for a in args)
            raise DemoError(f"{what} failed (exit status {proc.returncode}):\n  $ {shown}\n"
                            + "\n".join("  " + line for line in output.splitlines()[-30:]))
        return proc.stdout

    def git(self, cwd: Path, *args: str, what: str = "") -> str:
        return self.run(["git", *args], cwd, what or f"git {args[0]}")

    def agent(self, cwd: Path, *args: str, what: str = "") -> str:
        return self.run([sys.executable, "-m", "lfs_s3_agent", *args], cwd, what or f"lfs-s3-agent {args[0]}")

    # -- the demo -------------------------------------------------------------------------------

    def main(self) -> tuple[int, int]:
        if shutil.which("git") is None:
            raise DemoError("git is not installed: install it (e.g. apt-get install git)")
        version = subprocess.run(["git", "lfs", "version"], capture_output=True, text=True, check=False)
        if version.returncode != 0:
            raise DemoError("git-lfs is not installed: install it (Debian/Ubuntu: apt-get install git-lfs; "
                            "macOS: brew install git-lfs; others: https://git-lfs.com)")
        print(f"lfs-s3-agent demo in {self.work}  ({version.stdout.split()[0]})", flush=True)

        self.step("starting a local S3 server (moto) on 127.0.0.1")
        with MotoServer() as server:
            self.info(f"endpoint {server.endpoint}; fake credentials, isolated HOME {self.home}")
            return self._with_server(server)

    def _with_server(self, server: MotoServer) -> tuple[int, int]:
        s3 = server.client()
        endpoint = server.endpoint
        self.step(f"creating bucket {BUCKET!r}")
        s3.create_bucket(Bucket=BUCKET)

        remote = self.work / "remote.git"
        repo = self.work / "repo"
        self.step(f"creating a bare git remote ({remote.name}) and a repository ({repo.name})")
        self.git(self.work, "init", "-q", "--bare", "-b", "main", str(remote))
        self.git(self.work, "init", "-q", "-b", "main", str(repo))
        self.git(repo, "remote", "add", "origin", str(remote))

        self.step(f"lfs-s3-agent install --bucket {BUCKET} --prefix {PREFIX} --endpoint-url {endpoint} --save")
        out = self.agent(repo, "install", "--bucket", BUCKET, "--prefix", PREFIX, "--endpoint-url", endpoint,
                         "--save")
        self.info("\n".join(line for line in out.splitlines() if not line.startswith("next:")))
        saved = (repo / ".lfs-s3-agent.toml").read_text(encoding="utf-8")
        self.info("\n".join(f"  | {line}" for line in saved.splitlines()))

        self.step(f"git lfs track {' '.join(PATTERNS)}; writing {len(FILES)} files and committing them")
        self.git(repo, "lfs", "track", *PATTERNS)
        rng = random.Random(20240601)
        expected: dict[str, str] = {}
        for name, size in FILES:
            path = repo / name
            path.parent.mkdir(parents=True, exist_ok=True)
            data = rng.randbytes(size)
            path.write_bytes(data)
            expected[name] = hashlib.sha256(data).hexdigest()
            self.info(f"{name:<32} {_size(size):>10}  sha256 {expected[name][:16]}...")
        (repo / "README.txt").write_text("Large files live in S3 through lfs-s3-agent.\n", encoding="utf-8")
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-q", "-m", "Add assets stored in S3 through lfs-s3-agent")
        lfs_files = self.git(repo, "lfs", "ls-files", "--name-only").splitlines()
        if sorted(lfs_files) != sorted(expected):
            raise DemoError(f"git lfs ls-files lists {lfs_files}, expected {sorted(expected)}")
        total = sum(size for _, size in FILES)

        self.step(f"git push: git-lfs starts the agent, which uploads {len(FILES)} objects "
                  f"({_size(total)}) to S3")
        started = time.monotonic()
        self.git(repo, "push", "-q", "-u", "origin", "main", what="git push")
        self.info(f"pushed in {time.monotonic() - started:.1f} s")

        self.step(f"objects in s3://{BUCKET}/ (content-addressed: {PREFIX}/<oid[0:2]>/<oid[2:4]>/<oid>)")
        stored: dict[str, int] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            for obj in page.get("Contents", []):
                stored[obj["Key"]] = int(obj["Size"])
                etag = str(obj.get("ETag", "")).strip('"')
                parts = etag.rpartition("-")[2] if "-" in etag else ""
                how = f"  (multipart upload, {parts} parts)" if parts.isdigit() else ""
                self.info(f"{obj['Size']:>10}  {obj['Key']}{how}")
        sizes = dict(FILES)
        for name, oid in expected.items():
            key = f"{PREFIX}/{oid[0:2]}/{oid[2:4]}/{oid}"
            if stored.get(key) != sizes[name]:
                raise DemoError(f"{name}: expected s3://{BUCKET}/{key} with {sizes[name]} bytes, found "
                                f"{stored.get(key)!r}")
        if len(stored) != len(FILES):
            raise DemoError(f"expected {len(FILES)} objects in the bucket, found {len(stored)}")

        clone = self.work / "clone"
        self.step(f"lfs-s3-agent clone {remote.name} {clone.name} --endpoint-url {endpoint}")
        self.info("(git clone without LFS content, install from the committed .lfs-s3-agent.toml, git lfs pull)")
        started = time.monotonic()
        self.agent(self.work, "clone", str(remote), str(clone), "--endpoint-url", endpoint)
        self.info(f"cloned in {time.monotonic() - started:.1f} s; `lfs-s3-agent config` in the clone "
                  "(settings not at their defaults):")
        resolved = json.loads(self.agent(clone, "config", "--json", what="lfs-s3-agent config"))
        for name, item in resolved.items():
            if item["source"] != "default":
                self.info(f"  {name:<14} {item['value']!s:<26} from {item['source']}")

        self.step("checking every file in the clone is byte-identical (SHA-256)")
        for name, oid in expected.items():
            path = clone / name
            if not path.is_file():
                raise DemoError(f"{name} is missing from the clone")
            got = _sha256(path)
            if got != oid:
                raise DemoError(f"{name} in the clone has SHA-256 {got}, expected {oid} "
                                f"({path.stat().st_size} bytes; a pointer file is ~130 bytes)")
            self.info(f"ok  {name}")
        status = self.git(clone, "status", "--porcelain")
        if status.strip():
            raise DemoError(f"the clone's working tree is not clean after the pull:\n{status}")

        # The shared workers would otherwise idle for a minute against a server that is going away.
        for repo in (self.work / "repo", clone):
            self.agent(repo, "worker", "stop", what="lfs-s3-agent worker stop")
        self.step("stopping the shared workers and the S3 server")
        return len(FILES), total


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _size(n: int) -> str:
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    return f"{n / 1024:.1f} KiB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (repos, HOME) afterwards")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="lfs-s3-agent-demo-"))
    ok = False
    try:
        count, total = Demo(work).main()
        ok = True
    except DemoError as exc:
        print(f"\ndemo FAILED: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ndemo interrupted", file=sys.stderr)
    except Exception as exc:  # e.g. the S3 server did not start
        print(f"\ndemo FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr if not ok else sys.stdout)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if not ok:
        return 1
    print(f"\ndemo OK: {count} files, {total / MIB:.1f} MiB pushed and cloned through lfs-s3-agent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
