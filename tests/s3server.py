"""A moto S3 server on 127.0.0.1 in its own process, for the end-to-end tier and the demo.

git-lfs starts the agent as a subprocess, so the agent must reach S3 over HTTP:
the in-process ``mock_aws`` cannot serve it. The server runs as a separate process
(``python -m moto.server``) so it does not share the test process's GIL and its
state (including auth switched on for the credential tests) stays its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # botocore must never look for an instance role off 127.0.0.1 (169.254.169.254).
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``with MotoServer() as server: server.endpoint`` -> ``http://127.0.0.1:PORT``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> MotoServer:
        env = {**os.environ, **TEST_ENV}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # readiness poll, not a timing assertion
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}")
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto server did not start on {self.endpoint}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, **kwargs: Any) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=kwargs.pop("key", TEST_ENV["AWS_ACCESS_KEY_ID"]),
                            aws_secret_access_key=kwargs.pop("secret", TEST_ENV["AWS_SECRET_ACCESS_KEY"]),
                            **kwargs)

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def create_iam_access_key(server: MotoServer, user: str = "lfs-e2e") -> tuple[str, str]:
    """An IAM user with an allow-all inline policy and an access key (call while auth is still off)."""
    import json

    import boto3

    iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                       aws_access_key_id=TEST_ENV["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=TEST_ENV["AWS_SECRET_ACCESS_KEY"])
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="allow-all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return str(key["AccessKeyId"]), str(key["SecretAccessKey"])


def enable_auth(server: MotoServer) -> None:
    """Switch moto's request authentication on for this server (never for a shared one)."""
    request = urllib.request.Request(f"{server.endpoint}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise RuntimeError(f"moto reset-auth answered {response.status}")
