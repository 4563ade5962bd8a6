"""The fault matrix: each scenario injects one kind of fault into one kind of S3 request.

A scenario runs a real agent session (``serve()``) against a moto server reached through
the fault proxy, then checks the outcome from outside the proxy: either the transfer
completed and the bytes (in S3, or in the file handed to git-lfs) hash to the oid, or
the object failed with a clean per-object error, nothing corrupt was stored or handed
over, and no temporary file was left. Used by ``make reliability`` and by the test suite.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfs_s3_agent.agent import serve
from lfs_s3_agent.s3.keys import object_key
from lfs_s3_agent.settings import Settings
from lfs_s3_agent.store import S3Store
from tests.faultproxy import Fault, FaultProxy
from tests.s3server import MotoServer

MiB = 1 << 20
SMALL = 300 * 1024  # one PUT / one GET
LARGE = 11 * MiB  # multipart: parts of 5, 5 and 1 MiB; ranged GETs


@dataclass(frozen=True)
class Scenario:
    name: str
    op: str  # "upload" or "download"
    size: int
    fault: Fault
    expect: str  # "completed" or an error code name
    fast: bool = True  # part of the subset that runs in `make test`

    def fresh_fault(self) -> Fault:
        f = self.fault
        return Fault(kind=f.kind, method=f.method, path=f.path, times=f.times, status=f.status, code=f.code,
                     stall_seconds=f.stall_seconds)


OBJ = r"/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}"
SCENARIOS = [
    Scenario("PUT 500 InternalError x2", "upload", SMALL, Fault("status", "PUT", OBJ, 2, 500, "InternalError"),
             "completed"),
    Scenario("PUT 503 SlowDown x3", "upload", SMALL, Fault("status", "PUT", OBJ, 3, 503, "SlowDown"), "completed"),
    Scenario("PUT reset mid-body x1", "upload", SMALL, Fault("reset-request", "PUT", OBJ), "completed"),
    Scenario("PUT 403 AccessDenied", "upload", SMALL, Fault("status", "PUT", OBJ, 1, 403, "AccessDenied"),
             "ACCESS_DENIED"),
    Scenario("PUT 503 always", "upload", SMALL, Fault("status", "PUT", OBJ, 99, 503, "SlowDown"), "S3_ERROR",
             fast=False),
    Scenario("HEAD 500 x1", "upload", LARGE, Fault("status", "HEAD", OBJ, 1, 500, "InternalError"), "completed"),
    Scenario("UploadPart 503 SlowDown x2", "upload", LARGE, Fault("status", "PUT", r"partNumber=", 2, 503,
                                                                    "SlowDown"), "completed"),
    Scenario("UploadPart reset mid-body x1", "upload", LARGE, Fault("reset-request", "PUT", r"partNumber="),
             "completed"),
    Scenario("CompleteMultipartUpload 503 x1", "upload", LARGE, Fault("status", "POST", r"uploadId=", 1, 503,
                                                                        "SlowDown"), "completed"),
    Scenario("GET 500 x2", "download", SMALL, Fault("status", "GET", OBJ, 2, 500, "InternalError"), "completed"),
    Scenario("GET reset mid-body x1", "download", SMALL, Fault("reset-response", "GET", OBJ), "completed"),
    Scenario("GET truncated body x1", "download", SMALL, Fault("truncate", "GET", OBJ), "completed"),
    Scenario("GET corrupt body x1", "download", SMALL, Fault("corrupt", "GET", OBJ), "completed"),
    Scenario("GET corrupt body always", "download", SMALL, Fault("corrupt", "GET", OBJ, 99), "INTEGRITY"),
    Scenario("GET stalls past read timeout x1", "download", SMALL, Fault("stall", "GET", OBJ, 1,
                                                                          stall_seconds=4.0), "completed",
             fast=False),
    Scenario("GET 403 AccessDenied", "download", SMALL, Fault("status", "GET", OBJ, 1, 403, "AccessDenied"),
             "ACCESS_DENIED"),
    Scenario("ranged GET truncated x1", "download", LARGE, Fault("truncate", "GET", OBJ), "completed"),
    Scenario("ranged GET corrupt x1", "download", LARGE, Fault("corrupt", "GET", OBJ), "completed"),
    Scenario("ranged GET reset x2", "download", LARGE, Fault("reset-response", "GET", OBJ, 2), "completed"),
]


@dataclass
class Outcome:
    scenario: str
    injected: int
    outcome: str  # "completed" or "error <code> <NAME>"
    data_ok: bool  # bytes in S3 / handed to git-lfs hash to the oid (or nothing was stored/handed)
    leftovers: int  # temporary files left behind
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.data_ok and self.leftovers == 0


def run(scenario: Scenario, server: MotoServer, bucket: str, workdir: Path) -> Outcome:
    data = os.urandom(scenario.size)
    oid = hashlib.sha256(data).hexdigest()
    direct = server.client()
    key = object_key("rel", oid)
    tmp_dir = workdir / "lfs" / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    if scenario.op == "download":
        direct.put_object(Bucket=bucket, Key=key, Body=data)
    with FaultProxy(server.endpoint) as proxy:
        fault = proxy.add(scenario.fresh_fault())
        store = S3Store(Settings(bucket=bucket, prefix="rel", endpoint_url=proxy.endpoint, timeout=1,
                                 max_attempts=4, multipart_threshold=5 * MiB, part_size=5 * MiB, concurrency=2,
                                 stale_upload_days=0))
        init = {"event": "init", "operation": scenario.op, "remote": "origin", "concurrent": True,
                "concurrenttransfers": 1}
        if scenario.op == "upload":
            src = workdir / f"{oid}.bin"
            src.write_bytes(data)
            request: dict[str, Any] = {"event": "upload", "oid": oid, "size": len(data), "path": str(src)}
        else:
            request = {"event": "download", "oid": oid, "size": len(data)}
        lines = "".join(json.dumps(m) + "\n" for m in (init, request, {"event": "terminate"})).encode()
        out = io.BytesIO()
        serve(io.BytesIO(lines), out, store, tmp_dir=tmp_dir)
        injected = fault.injected
    replies = [json.loads(line) for line in out.getvalue().splitlines()]
    (complete,) = [r for r in replies if r.get("event") == "complete"]
    error = complete.get("error")
    from lfs_s3_agent.errors import Code

    outcome = "completed" if error is None else f"error {error['code']} {Code(error['code']).name}"
    if scenario.op == "upload":
        try:
            stored = direct.get_object(Bucket=bucket, Key=key)["Body"].read()
            data_ok = hashlib.sha256(stored).hexdigest() == oid
        except direct.exceptions.NoSuchKey:
            data_ok = error is not None  # nothing stored is fine only when the push failed
        direct.delete_object(Bucket=bucket, Key=key)
        for upload in direct.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            direct.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    else:
        path = complete.get("path")
        data_ok = (error is not None and path is None) or (
            path is not None and hashlib.sha256(Path(path).read_bytes()).hexdigest() == oid)
        if path:
            Path(path).unlink()
    leftovers = len(list(tmp_dir.iterdir()))
    return Outcome(scenario.name, injected, outcome, data_ok, leftovers, (error or {}).get("message", ""))


def run_all(scenarios: list[Scenario]) -> list[Outcome]:
    results = []
    with MotoServer() as server, tempfile.TemporaryDirectory() as tmp:
        server.client().create_bucket(Bucket="reliability")
        for i, scenario in enumerate(scenarios):
            work = Path(tmp) / str(i)
            work.mkdir()
            results.append(run(scenario, server, "reliability", work))
    return results


def table(results: list[Outcome], scenarios: list[Scenario]) -> str:
    rows = ["| fault | times injected | outcome | expected | data checked by hash | temp files left |",
            "|---|---|---|---|---|---|"]
    for result, scenario in zip(results, scenarios, strict=True):
        ok = "ok" if result.data_ok else "**CORRUPT**"
        rows.append(f"| {result.scenario} | {result.injected} | {result.outcome} | {scenario.expect} | {ok} | "
                    f"{result.leftovers} |")
    return "\n".join(rows)
