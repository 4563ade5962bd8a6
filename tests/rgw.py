"""A real S3 implementation for the interop tier: a throwaway one-node Ceph cluster running radosgw.

``with RgwServer(https=False) as s: s.endpoint, s.client(), s.env()`` — the same interface as
``tests.s3server.MotoServer``. Everything lives in one temp dir (config, cephx keyring, mon store,
an in-memory OSD, logs, a self-signed CA and server certificate) and only 127.0.0.1 is used:

- mon ``a`` on a free port (msgr v2 only), no ceph-mgr (never call mgr commands: they hang without one);
- ``osd.0`` with ``memstore`` (every byte in RAM: the fastest to make and start, nothing on disk);
- ``radosgw`` with the beast frontend on a free http port and a free https port (both always on;
  ``https=`` picks which one ``endpoint`` is), the ops log in ``ops_log``;
- a user with fixed keys (by default the keys every test already has in its environment).

Start is bounded (``timeout``, ~90 s): on failure the error shows the tail of each daemon's log.
Stop always runs (even after a failed start): SIGTERM to radosgw, OSD and mon, SIGKILL to whatever
is still alive a few seconds later, then the temp dir is removed. The daemons also get SIGKILL if
the Python process that started them dies (PR_SET_PDEATHSIG), so a killed run leaves no daemon.

``python -m tests.rgw [--https]`` starts one, prints its endpoint and settings, and waits for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.s3server import TEST_ENV, free_port

#: Debian (bookworm) packages that provide the daemons and tools used here.
PACKAGES = ("ceph-mon", "ceph-osd", "radosgw", "ceph-common")
TOOLS = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph-authtool", "monmaptool", "ceph", "openssl")
RGW_NAME = "client.rgw.test"
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL (radosgw may ignore SIGTERM for longer)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the parent dies (Linux); elsewhere nothing."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class RgwError(RuntimeError):
    pass


class RgwServer:
    def __init__(self, *, https: bool = False, access_key: str = TEST_ENV["AWS_ACCESS_KEY_ID"],
                 secret_key: str = TEST_ENV["AWS_SECRET_ACCESS_KEY"], timeout: float = 90.0,
                 memstore_bytes: int = 4 << 30) -> None:
        self.https = https
        self.access_key = access_key
        self.secret_key = secret_key
        self.timeout = timeout
        self.memstore_bytes = memstore_bytes
        self.dir: Path | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.http_port = self.https_port = self.mon_port = 0
        self.http_endpoint = self.https_endpoint = self.endpoint = ""

    # -- paths -------------------------------------------------------------------------------------

    def _path(self, *parts: str) -> Path:
        assert self.dir is not None, "not started"
        return self.dir.joinpath(*parts)

    @property
    def conf(self) -> Path:
        return self._path("ceph.conf")

    @property
    def ca_bundle(self) -> str:
        """PEM of the CA that signed radosgw's certificate: pass it as ``--ca-bundle``/``verify=``."""
        return str(self._path("tls", "ca.pem"))

    @property
    def ops_log(self) -> Path:
        """radosgw's per-request log (one JSON object per request)."""
        return self._path("log", "rgw-ops.log")

    @property
    def log_dir(self) -> Path:
        return self._path("log")

    # -- start ---------------------------------------------------------------------------------------

    def start(self) -> RgwServer:
        missing = missing_tools()
        if missing:
            raise RgwError(f"missing {', '.join(missing)}: install the Debian packages "
                           f"{' '.join(PACKAGES)} (apt-get install {' '.join(PACKAGES)}; `make interop` does "
                           "this as root)")
        self.dir = Path(tempfile.mkdtemp(prefix="lfs-rgw-"))
        self.deadline = time.monotonic() + self.timeout
        try:
            self._start()
        except BaseException as exc:
            detail = self.log_tails()
            self.stop()
            if isinstance(exc, RgwError):
                raise RgwError(f"{exc}\n{detail}") from None
            raise
        return self

    def _start(self) -> None:
        for sub in ("log", "run", "mon", "osd", "tls", "rgw"):
            self._path(sub).mkdir()
        self.mon_port, self.http_port, self.https_port = self._free_ports(3)
        self.http_endpoint = f"http://127.0.0.1:{self.http_port}"
        self.https_endpoint = f"https://127.0.0.1:{self.https_port}"
        self.endpoint = self.https_endpoint if self.https else self.http_endpoint
        self._make_certificates()
        self._write_conf()
        self._make_keyring()
        self._run("monmaptool", "--create", "--fsid", self.fsid, "--addv", "a",
                  f"[v2:127.0.0.1:{self.mon_port}]", str(self._path("monmap")))
        self._run("ceph-mon", "-c", str(self.conf), "--mkfs", "-i", "a", "--monmap", str(self._path("monmap")),
                  "--keyring", str(self._path("keyring")))
        self._spawn("mon", "ceph-mon", "-f", "-c", str(self.conf), "-i", "a")
        osd_uuid = str(uuid.uuid4())
        osd_id = self._ceph("osd", "new", osd_uuid).strip()
        if osd_id != "0":
            raise RgwError(f"`ceph osd new` gave id {osd_id!r}, expected 0")
        self._path("osd", "osd.0").mkdir()
        self._run("ceph-osd", "-c", str(self.conf), "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        self._spawn("osd", "ceph-osd", "-f", "-c", str(self.conf), "-i", "0")
        self._wait("the OSD to come up", self._osd_up)
        self._spawn("rgw", "radosgw", "-f", "-c", str(self.conf), "-n", RGW_NAME)
        self._wait("radosgw to answer on http and https", self._rgw_answers)
        self._run("radosgw-admin", "-c", str(self.conf), "-n", "client.admin", "user", "create", "--uid", "lfs-test",
                  "--display-name", "lfs-s3-agent tests", "--access-key", self.access_key,
                  "--secret-key", self.secret_key)
        self._wait("the test user to be accepted", self._user_accepted)

    def _free_ports(self, count: int) -> list[int]:
        ports: set[int] = set()
        while len(ports) < count:
            ports.add(free_port())
        return sorted(ports)

    def _make_certificates(self) -> None:
        tls = self._path("tls")
        (tls / "ca.ext").write_text("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                                    "subjectKeyIdentifier=hash\n")
        (tls / "server.ext").write_text("basicConstraints=critical,CA:FALSE\n"
                                        "keyUsage=critical,digitalSignature,keyEncipherment\n"
                                        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n"
                                        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        ossl = ["openssl"]
        self._run(*ossl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                  "/CN=lfs-s3-agent test CA", "-keyout", str(tls / "ca.key"), "-out", str(tls / "ca.pem"),
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self._run(*ossl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                  "-keyout", str(tls / "server.key"), "-out", str(tls / "server.csr"))
        self._run(*ossl, "x509", "-req", "-in", str(tls / "server.csr"), "-CA", str(tls / "ca.pem"),
                  "-CAkey", str(tls / "ca.key"), "-CAcreateserial", "-days", "2",
                  "-extfile", str(tls / "server.ext"), "-out", str(tls / "server.pem"))

    def _write_conf(self) -> None:
        self.fsid = str(uuid.uuid4())
        d = self.dir
        tls = self._path("tls")
        self.conf.write_text(f"""[global]
fsid = {self.fsid}
mon host = [v2:127.0.0.1:{self.mon_port}]
mon initial members = a
public addr = 127.0.0.1
public network = 127.0.0.1/32
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {d}/keyring
run dir = {d}/run
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
log file = {d}/log/$name.log
log to stderr = false
err to stderr = true
crash dir = {d}/crash
mon data = {d}/mon/$name
osd data = {d}/osd/$name
osd objectstore = memstore
memstore device bytes = {self.memstore_bytes}
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd crush chooseleaf type = 0
osd max object name len = 460
osd max object namespace len = 64
mon data avail warn = 1
mon data avail crit = 0

[client.rgw.test]
rgw frontends = beast endpoint=127.0.0.1:{self.http_port} ssl_endpoint=127.0.0.1:{self.https_port} \
ssl_certificate={tls}/server.pem ssl_private_key={tls}/server.key
rgw data = {d}/rgw
rgw enable ops log = true
rgw ops log file path = {d}/log/rgw-ops.log
rgw enable usage log = false
rgw thread pool size = 128
""")

    def _make_keyring(self) -> None:
        keyring = str(self._path("keyring"))
        entities = [
            ("mon.", ["mon", "allow *"]),
            ("client.admin", ["mon", "allow *", "osd", "allow *", "mds", "allow *", "mgr", "allow *"]),
            ("osd.0", ["mon", "allow profile osd", "osd", "allow *", "mgr", "allow profile osd"]),
            (RGW_NAME, ["mon", "allow rw", "osd", "allow rwx"]),
        ]
        for index, (name, caps) in enumerate(entities):
            args = ["ceph-authtool", keyring, "--gen-key", "-n", name]
            if index == 0:
                args.insert(1, "--create-keyring")
            for i in range(0, len(caps), 2):
                args += ["--cap", caps[i], caps[i + 1]]
            self._run(*args)

    # -- helpers -------------------------------------------------------------------------------------

    def _remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RgwError(f"RGW did not start within {self.timeout:.0f} s")
        return left

    def _run(self, *args: str) -> str:
        limit = min(60.0, self._remaining())
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=limit,
                                  stdin=subprocess.DEVNULL, cwd=self.dir)
        except subprocess.TimeoutExpired:
            raise RgwError(f"RGW did not start: no answer within {limit:.0f} s (start timeout {self.timeout:.0f} s) "
                           f"from {' '.join(args)}") from None
        if proc.returncode != 0:
            raise RgwError(f"{' '.join(args)} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def _ceph(self, *args: str) -> str:
        return self._run("ceph", "-c", str(self.conf), "-n", "client.admin", "--connect-timeout", "15", *args)

    def _spawn(self, name: str, *args: str) -> None:
        out = self._path("log", f"{name}.out").open("wb")
        with out:
            self.procs[name] = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                                cwd=self.dir, start_new_session=True, preexec_fn=_die_with_parent)

    def _wait(self, what: str, ready: Any) -> None:
        while True:  # readiness poll, not a timing assertion
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RgwError(f"{name} exited with {proc.returncode} while waiting for {what}")
            if self.deadline - time.monotonic() <= 0:
                raise RgwError(f"RGW did not start within {self.timeout:.0f} s (waiting for {what})")
            if ready():
                return
            time.sleep(0.2)

    def _osd_up(self) -> bool:
        dump = json.loads(self._ceph("osd", "dump", "--format", "json"))
        return any(o["osd"] == 0 and o["up"] == 1 and o["in"] == 1 for o in dump["osds"])

    def _rgw_answers(self) -> bool:
        return all(self._get(url) is not None for url in (self.http_endpoint, self.https_endpoint))

    def _user_accepted(self) -> bool:
        try:
            self.client().list_buckets()
            return True
        except Exception:
            return False

    def _get(self, url: str) -> int | None:
        context = ssl.create_default_context(cafile=self.ca_bundle) if url.startswith("https") else None
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except (urllib.error.URLError, OSError):
            return None

    def log_tails(self, lines: int = 25) -> str:
        if self.dir is None or not self._path("log").is_dir():
            return ""
        out = []
        for path in sorted(self._path("log").iterdir()):
            if path.name == "rgw-ops.log" or not path.is_file():
                continue
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                out.append(f"--- tail of {path.name} ---\n" + "\n".join(text))
        return "\n".join(out)

    # -- stop ----------------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM every daemon (radosgw first), SIGKILL those still alive after STOP_GRACE; remove the dir."""
        procs = [self.procs[n] for n in ("rgw", "osd", "mon") if n in self.procs]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self.procs.clear()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> RgwServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the MotoServer interface -----------------------------------------------------------------

    def client(self, **kwargs: Any) -> Any:
        """A boto3 S3 client with this server's keys. RGW 16 refuses boto3's default checksum trailer over
        https (aws-chunked, unsigned), so only required checksums are sent (the agent's ``--checksums
        when_required``)."""
        import boto3
        from botocore.config import Config

        config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required")
        if "config" in kwargs:
            config = config.merge(kwargs.pop("config"))
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", config=config,
                            aws_access_key_id=kwargs.pop("key", self.access_key),
                            aws_secret_access_key=kwargs.pop("secret", self.secret_key),
                            verify=kwargs.pop("verify", self.ca_bundle if self.https else None), **kwargs)

    def env(self) -> dict[str, str]:
        """Credentials and region for a process that talks to this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}

    def test_env(self) -> dict[str, str]:
        """The switch that points the e2e tier at this server (see tests/e2e/conftest.py)."""
        env = {"LFS_S3_TEST_ENDPOINT": self.endpoint, "LFS_S3_TEST_ACCESS_KEY": self.access_key,
               "LFS_S3_TEST_SECRET_KEY": self.secret_key, "LFS_S3_TEST_OPS_LOG": str(self.ops_log)}
        if self.https:
            env["LFS_S3_TEST_CA_BUNDLE"] = self.ca_bundle
            # boto3 (>= 1.36) sends its default CRC32 checksums over https as an unsigned aws-chunked
            # trailer, which RGW 16 refuses (MissingContentLength): the tests' own boto3 client needs
            # when_required there. The agent does not (it sends its SHA-256 in a header; doctor warns).
            env["LFS_S3_TEST_CHECKSUMS"] = "when_required"
        return env


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.rgw", description=__doc__.split("\n\n")[0])
    parser.add_argument("--https", action="store_true", help="make the https endpoint the main one")
    args = parser.parse_args(argv)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    started = time.monotonic()
    with RgwServer(https=args.https) as server:
        print(f"RGW up in {time.monotonic() - started:.1f} s")
        print(f"endpoint:  {server.endpoint}")
        print(f"http:      {server.http_endpoint}\nhttps:     {server.https_endpoint}")
        print(f"CA bundle: {server.ca_bundle}\nops log:   {server.ops_log}\nlogs:      {server.log_dir}")
        print("environment for the e2e tier:")
        for name, value in {**server.env(), **server.test_env()}.items():
            print(f"  export {name}={value}")
        print("Ctrl-C stops it and removes everything.", flush=True)
        for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background job starts with it ignored
            signal.signal(signum, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
