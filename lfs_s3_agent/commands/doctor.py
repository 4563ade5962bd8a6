"""``doctor``: check, in order, everything a push or pull depends on, and say how to fix what fails.

Checks: git and git-lfs versions; the repository's install state (the customtransfer keys
point at a Python that can import the agent, the standalone agent, git-lfs's filters and the
pre-push hook); the resolved settings and where each came from; the credentials' identity
(STS ``GetCallerIdentity`` with the same endpoint rules as S3; "not available" on an
S3-compatible endpoint without STS; never a secret); the bucket and its region; a write,
read, list and delete of a probe object under the prefix; what the store does with
If-None-Match, checksums, SSE and DeleteObjects (``s3.capabilities``, recorded for the agent); and
whether the endpoint accepts boto3's default (flexible) checksums (a warning when not: that concerns
other tools, not the agent). Later checks are skipped when an earlier one they
depend on failed. S3 requests here use at most 2 attempts and a short timeout, so that a
wrong endpoint is reported in seconds rather than minutes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lfs_s3_agent import gitrepo, launcher, settings
from lfs_s3_agent.commands import prepush
from lfs_s3_agent.commands.common import Cwd
from lfs_s3_agent.commands.install import AGENT_NAME, agent_keys
from lfs_s3_agent.errors import AgentError, Code, ConfigError, GitError
from lfs_s3_agent.linked import LocalLinks, local_links_dir
from lfs_s3_agent.s3.capabilities import AFTER_BODY, BEFORE_BODY
from lfs_s3_agent.s3.client import ClientSpec, S3Client, caller_identity, make_client
from lfs_s3_agent.s3.errors import translate
from lfs_s3_agent.s3.keys import list_prefix
from lfs_s3_agent.settings import Settings
from lfs_s3_agent.store import S3Store
from lfs_s3_agent.wiring import Wiring

MARKS = {"ok": "✓", "fail": "✗", "warn": "!", "skip": "-"}
ASCII_MARKS = {"ok": "ok", "fail": "FAIL", "warn": "warn", "skip": "skip"}
PROBE_NAME = ".lfs-s3-agent-doctor-"
DOCTOR_TIMEOUT = 15  #: seconds; doctor should answer fast even when the endpoint does not


@dataclass
class Check:
    name: str
    status: str  #: "ok", "warn", "fail" or "skip"
    detail: str
    fix: str = ""
    lines: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix,
                "lines": self.lines}


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_json() for c in self.checks]}

    def render(self, unicode: bool | None = None) -> list[str]:
        if unicode is None:
            unicode = _can_print(MARKS.values())
        marks = MARKS if unicode else ASCII_MARKS
        width = max((len(c.name) for c in self.checks), default=0)
        lines = []
        for c in self.checks:
            lines.append(f"{marks[c.status]:<4} {c.name:<{width}}  {c.detail}")
            lines.extend(f"       {line}" for line in c.lines)
            if c.fix:
                lines.append(f"       fix: {c.fix}")
        failed = [c.name for c in self.checks if c.status == "fail"]
        lines.append("all checks passed" if not failed else f"{len(failed)} check(s) failed: {', '.join(failed)}")
        return lines


def _can_print(texts: Any) -> bool:
    """Can stdout show these characters (a UTF-8 terminal), or do we fall back to ASCII marks?"""
    import sys

    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "".join(texts).encode(encoding)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


# -- local checks ---------------------------------------------------------------------------------

def _run(args: list[str], cwd: Cwd = None) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, cwd=cwd, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None


def check_git() -> Check:
    proc = _run(["git", "--version"])
    if proc is None or proc.returncode != 0:
        return Check("git", "fail", "git is not installed or not on PATH",
                     fix="install git (Debian/Ubuntu: `apt-get install git`, macOS: `xcode-select --install`)")
    return Check("git", "ok", proc.stdout.strip())


def check_git_lfs() -> Check:
    proc = _run(["git", "lfs", "version"])
    if proc is None or proc.returncode != 0:
        return Check("git-lfs", "fail", "git-lfs is not installed",
                     fix="install it (Debian/Ubuntu: `apt-get install git-lfs`, macOS: `brew install git-lfs`, "
                         "others: https://git-lfs.com)")
    version = proc.stdout.strip()
    match = re.search(r"git-lfs/(\d+)\.(\d+)", version)
    if match and int(match[1]) < 3:
        return Check("git-lfs", "warn", f"{version}: lfs-s3-agent is tested with git-lfs 3.x",
                     fix="upgrade git-lfs to 3.x")
    return Check("git-lfs", "ok", version)


def check_install(cwd: Cwd = None) -> Check:
    try:
        repo = gitrepo.repo_paths(cwd)
    except GitError as exc:
        return Check("install", "fail", exc.message, fix="run doctor inside the clone you push and pull from")
    fix = "run `lfs-s3-agent install` in this repository, from the Python environment that has lfs-s3-agent"
    config = dict(gitrepo.read_config(r"^(lfs\.|filter\.lfs\.)", cwd=cwd))
    expected = agent_keys()
    base = f"lfs.customtransfer.{AGENT_NAME}"
    problems = []
    path = config.get(f"{base}.path", "")
    if not path:
        problems.append(f"{base}.path is not set: lfs-s3-agent is not installed here")
    elif not os.path.isfile(path) or not os.access(path, os.X_OK):
        problems.append(f"{base}.path is {path}, which does not exist (the Python environment was moved or deleted?)")
    runnable = path != "" and os.path.isfile(path) and os.access(path, os.X_OK)
    python = launcher.launcher_python(path) if runnable else None  # the sh launcher install writes (issue 15)
    if python is not None:
        if not (os.path.isfile(python) and os.access(python, os.X_OK)):
            problems.append(f"the launcher {path} starts {python}, which does not exist (the Python environment "
                            "was moved or deleted?)")
        else:
            proc = _run([python, "-c", "import lfs_s3_agent"])
            if proc is None or proc.returncode != 0:
                problems.append(f"{python} (started by the launcher {path}) cannot import lfs_s3_agent")
    elif runnable:
        proc = _run([path, "-c", "import lfs_s3_agent"])
        if proc is None or proc.returncode != 0:
            problems.append(f"{path} (from {base}.path) cannot import lfs_s3_agent")
    args = config.get(f"{base}.args", "")
    if path and python is not None and args.split()[:1] != ["serve"]:
        problems.append(f"{base}.args is {args!r}, expected 'serve' (for the launcher {path})")
    elif path and python is None and "lfs_s3_agent serve" not in args:
        problems.append(f"{base}.args is {args!r}, expected {expected[f'{base}.args']!r}")
    agents = {k: v for k, v in config.items() if k.endswith("standalonetransferagent")}
    if path and AGENT_NAME not in agents.values():
        problems.append(f"lfs.standalonetransferagent is {agents.get('lfs.standalonetransferagent')!r}: git-lfs "
                        "would ask an LFS server, not the agent")
    if "filter.lfs.process" not in config:
        problems.append("git-lfs's filters are not configured (`git lfs install` was never run)")
    hook_note, hook_status = _hook_state(repo, cwd)
    if problems:
        return Check("install", "fail", problems[0], fix=fix, lines=problems[1:] + ([hook_note] if hook_note else []))
    detail = f"git-lfs runs {path} {args}"
    if hook_status != "ok":
        return Check("install", hook_status, hook_note, fix="run `lfs-s3-agent install` to write the pre-push hook",
                     lines=[detail])
    return Check("install", "ok", detail, lines=[hook_note] if hook_note else [])


def _hook_state(repo: gitrepo.RepoPaths, cwd: Cwd) -> tuple[str, str]:
    hooks = gitrepo.git("rev-parse", "--path-format=absolute", "--git-path", "hooks", cwd=cwd).stdout.strip()
    hook = os.path.join(hooks, "pre-push")
    if not os.path.isfile(hook):
        return f"no pre-push hook at {hook}: `git push` will not upload LFS objects", "fail"
    text = Path(hook).read_text(encoding="utf-8", errors="replace")
    if prepush.HOOK_MARK in text:
        return "pre-push hook: lfs-s3-agent's", "ok"
    links = LocalLinks(local_links_dir(repo.common_dir))
    if "lfs-s3-agent pre-push" in text:
        return "pre-push hook: a custom one that calls lfs-s3-agent pre-push", "ok"
    if "git lfs pre-push" in text:
        if links.any():
            return ("pre-push hook: git-lfs's own, which refuses pushes of linked files never downloaded here",
                    "warn")
        return "pre-push hook: git-lfs's own (linked files never downloaded here need lfs-s3-agent's)", "ok"
    return f"pre-push hook {hook} calls neither git-lfs nor lfs-s3-agent: LFS objects may not be pushed", "warn"


def check_settings(flags: Mapping[str, Any] | None, cwd: Cwd) -> tuple[Check, settings.Resolved | None]:
    try:
        resolved = settings.load(flags, cwd=cwd, require_bucket=False)
    except ConfigError as exc:
        return Check("settings", "fail", exc.message,
                     fix="fix the value named; `lfs-s3-agent config` shows where each one is set"), None
    lines = []
    for spec in settings.FIELDS:
        value = resolved.values[spec.name]
        shown = "(not set)" if value is None or value == "" else value
        lines.append(f"{spec.name} = {shown}  ({resolved.sources[spec.name]})")
    if not resolved.values["bucket"]:
        return Check("settings", "fail", "no bucket is configured",
                     fix="`lfs-s3-agent install --bucket NAME [--prefix PATH]`", lines=lines), None
    where = resolved.settings.describe()
    return Check("settings", "ok", where, lines=lines), resolved


# -- S3 checks ------------------------------------------------------------------------------------

def _custom_endpoint(values: Settings) -> str | None:
    return ClientSpec.for_store(values).custom_endpoint


def _masked(key_id: str) -> str:
    return f"…{key_id[-4:]}" if len(key_id) > 4 else "…"


def check_identity(values: Settings) -> Check:
    try:
        ident = caller_identity(ClientSpec.for_store(values), timeout=DOCTOR_TIMEOUT)
    except AgentError as exc:
        return Check("credentials", "fail", exc.message, fix=_fix(exc))
    if ident is None:
        return Check("credentials", "fail", "no AWS credentials found",
                     fix="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --profile / AWS_PROFILE, or log in "
                         "(`aws sso login`)")
    found = f"credentials from {ident.method} (access key {_masked(ident.access_key)})"
    custom = _custom_endpoint(values)
    sts_error = ident.sts_error
    if sts_error is not None:
        if custom:
            return Check("credentials", "ok", f"{found}; identity not available (no STS at {custom})")
        if sts_error.s3_code:
            return Check("credentials", "fail", f"AWS rejected the {found}: {sts_error.s3_code}",
                         fix=_fix(sts_error))
        return Check("credentials", "warn", f"{found}; STS could not be reached ({sts_error.message})",
                     fix="check the network; the bucket checks below tell whether S3 accepts the credentials")
    return Check("credentials", "ok", f"{ident.arn} (account {ident.account}); {found}")


def check_bucket(store: S3Store) -> Check:
    s = store.settings
    client = store.client
    try:
        resp = client.head_bucket(Bucket=s.bucket)
    except AgentError as exc:
        err = exc
        status = err.status
        if status == 404 or err.code == Code.NO_SUCH_BUCKET:
            return Check("bucket", "fail", f"bucket {s.bucket!r} does not exist"
                         + (f" at {s.endpoint_url}" if s.endpoint_url else ""),
                         fix="check --bucket (and --endpoint-url / --region); create it if it should exist")
        if status == 301:
            actual = err.bucket_region
            return Check("bucket", "fail", f"bucket {s.bucket!r} is in another region ({actual or 'unknown'})",
                         fix=f"`lfs-s3-agent install --region {actual or 'REGION'}`")
        if status == 403 or err.code == Code.ACCESS_DENIED:
            return Check("bucket", "fail", f"access to bucket {s.bucket!r} is denied (HeadBucket needs "
                         "s3:ListBucket), or it belongs to another account",
                         fix="allow s3:ListBucket on the bucket for these credentials")
        return Check("bucket", "fail", err.message, fix=_fix(err))
    region = resp.get("BucketRegion") or resp.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(
        "x-amz-bucket-region")
    if not region:
        try:
            region = client.get_bucket_location(Bucket=s.bucket).get("LocationConstraint") or "us-east-1"
        except AgentError:
            region = None
    client_region = client.region
    detail = f"bucket {s.bucket!r} exists" + (f", region {region}" if region else "")
    if region and not _custom_endpoint(s):
        if s.region and s.region != region:
            return Check("bucket", "fail", f"{detail}, but the settings say region {s.region}",
                         fix=f"`lfs-s3-agent install --region {region}`")
        if not s.region and client_region != region:
            return Check("bucket", "warn", f"{detail}; requests go to {client_region} first and are redirected",
                         fix=f"`lfs-s3-agent install --region {region}`")
    return Check("bucket", "ok", detail)


def _fix(err: AgentError) -> str:
    return {
        Code.ACCESS_DENIED: "allow s3:GetObject, s3:PutObject, s3:DeleteObject on bucket/prefix/* and "
                            "s3:ListBucket on the bucket for these credentials (examples/aws.md)",
        Code.CREDENTIALS: "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --profile, or `aws sso login`",
        Code.NETWORK: "check --endpoint-url, --region, the proxy and the network",
        Code.TIMEOUT: "check the network and the endpoint; raise --timeout",
        Code.NO_SUCH_BUCKET: "check --bucket, --endpoint-url and --region",
        Code.CONFIG: "fix the setting the message names (`lfs-s3-agent config` shows where each one is set)",
    }.get(err.code, "read the message above")


def probe_key(prefix: str) -> str:
    return f"{list_prefix(prefix)}{PROBE_NAME}{secrets.token_hex(8)}"


def check_probe(store: S3Store) -> Check:
    s = store.settings
    client = store.client
    key = probe_key(s.prefix)
    url = f"s3://{s.bucket}/{key}"
    body = b"lfs-s3-agent doctor probe " + secrets.token_bytes(16)
    oid = hashlib.sha256(body).hexdigest()
    step = "write"
    try:
        client.put_object(Bucket=s.bucket, Key=key, Body=body,
                          ChecksumSHA256=base64.b64encode(bytes.fromhex(oid)).decode(), **store.put_args(oid))
        step = "read"
        read = client.get_object(Bucket=s.bucket, Key=key)["Body"].read()
    except Exception as exc:
        err = translate(exc, bucket=s.bucket, key=key, endpoint=s.endpoint_url)
        if step == "read":
            _delete_quietly(client, s.bucket, key)
        return Check("read/write", "fail", f"cannot {step} {url}: {err.message}", fix=_fix(err))
    if read != body:
        _delete_quietly(client, s.bucket, key)
        return Check("read/write", "fail", f"{url} read back {len(read)} bytes that differ from what was written",
                     fix="the endpoint or a proxy alters objects: check it")
    notes = []
    status = "ok"
    try:
        listed = client.list_objects_v2(Bucket=s.bucket, Prefix=key, MaxKeys=1).get("Contents", [])
        if not listed:
            status = "warn"
            notes.append(f"listing {list_prefix(s.prefix) or 'the bucket'} did not show the probe")
    except Exception as exc:
        err = translate(exc, bucket=s.bucket, key=key, endpoint=s.endpoint_url)
        status = "warn"
        notes.append(f"cannot list ({err.message}): verify, gc, ls, du and copy need s3:ListBucket")
    try:
        client.delete_object(Bucket=s.bucket, Key=key)
    except Exception as exc:
        err = translate(exc, bucket=s.bucket, key=key, endpoint=s.endpoint_url)
        status = "warn"
        notes.append(f"cannot delete ({err.message}): gc needs s3:DeleteObject; the probe is left at {url}")
    if status == "ok":
        return Check("read/write", "ok", f"wrote, read, listed and deleted {url}")
    return Check("read/write", "warn", f"wrote and read {url}, but " + "; ".join(notes),
                 fix="allow s3:ListBucket on the bucket and s3:DeleteObject on bucket/prefix/*")


def check_public(store: S3Store) -> Check:
    """The public URL serves the store's keys: a probe written to S3 is fetched through it, unsigned."""
    s = store.settings
    public = store.public
    assert public is not None
    key = probe_key(s.prefix)
    body = b"lfs-s3-agent doctor public probe " + secrets.token_bytes(16)
    oid = hashlib.sha256(body).hexdigest()
    url = public.url(key)
    try:
        store.client.put_object(Bucket=s.bucket, Key=key, Body=body,
                                ChecksumSHA256=base64.b64encode(bytes.fromhex(oid)).decode(), **store.put_args(oid))
    except AgentError as err:
        return Check("public url", "warn", f"cannot write a probe to check {s.public_url} ({err.message})",
                     fix="run doctor where credentials can write the store")
    try:
        read = public.get_object(Key=key)["Body"].read()
    except AgentError as err:
        fix = ("the public URL must serve <public_url>/<key> for the store's keys (a CloudFront origin on the bucket, "
               "no origin path beyond the prefix layout); a mirror synced later serves new objects only then")
        status = "warn" if err.code == Code.NOT_FOUND else "fail"
        return Check("public url", status, f"{url} did not serve the probe: {err.message}", fix=fix)
    finally:
        _delete_quietly(store.client, s.bucket, key)
    if hashlib.sha256(read).hexdigest() != oid:
        return Check("public url", "fail", f"{url} served {len(read)} bytes that differ from the probe",
                     fix="the public URL (or a cache in front of it) alters objects: check it")
    return Check("public url", "ok", f"fetched a probe through {url} (no credentials sent)")


def _delete_quietly(client: Any, bucket: str, key: str) -> None:
    try:
        client.delete_object(Bucket=bucket, Key=key)
    except Exception:
        return


def check_store(store: S3Store) -> Check:
    """What the store does with If-None-Match, checksums, SSE and DeleteObjects (a fresh probe, then kept
    for the agent: ``s3.capabilities``)."""
    try:
        caps = store.capabilities(fresh=True, full=True)
    except AgentError as err:
        return Check("store", "fail", f"cannot find out what the store does: {err.message}", fix=_fix(err))
    lines = caps.lines(store.settings.sse)
    problem = store.sse_problem(caps)
    if problem is not None:
        return Check("store", "fail", problem.message, fix="configure encryption on the store, or `lfs-s3-agent "
                     "install --sse none`", lines=lines)
    adapted = []
    if caps.if_none_match != BEFORE_BODY:
        adapted.append("HEAD before upload" + (" above 1 MiB" if caps.if_none_match == AFTER_BODY else ""))
    if not caps.checksum_headers:
        adapted.append("no checksum headers")
    detail = "S3's behaviour in everything the agent relies on" if not adapted else (
        "differs from S3; the agent adapts: " + ", ".join(adapted))
    return Check("store", "ok", detail, lines=lines)


def checksum_client(values: Settings, mode: Literal["when_supported", "when_required"]) -> S3Client:
    """An S3 client like the agent's, but with boto3's checksum behaviour set to ``mode``."""
    return make_client(ClientSpec.for_store(values).with_(checksums=mode))


def check_checksums(store: S3Store) -> Check:
    """Does the endpoint take boto3's default checksums (a CRC32, an aws-chunked trailer over https)?

    The agent itself does not depend on it (every body it sends carries its SHA-256 in a header; the
    ``store`` check proved that path): a refusal concerns other boto3-based tools on this endpoint,
    so it is a warning that says so, not a failure.
    """
    s = store.settings
    key = probe_key(s.prefix)
    body = b"lfs-s3-agent doctor checksum probe " + secrets.token_bytes(16)
    client = checksum_client(s, "when_supported")
    try:
        # botocore itself, not S3Client.call: the agent's own adaptations would hide what other tools meet
        client.raw.put_object(Bucket=s.bucket, Key=key, Body=body)  # no checksum given: boto3 adds its own
        client.raw.get_object(Bucket=s.bucket, Key=key)["Body"].read()
        refused = None
    except Exception as exc:
        refused = translate(exc, bucket=s.bucket, key=key, endpoint=s.endpoint_url)
    finally:
        _delete_quietly(store.client, s.bucket, key)
    if refused is None:
        unneeded = f" (checksums = {s.checksums} is set, which it does not need)" if s.checksums != "when_supported" \
            else ""
        return Check("checksums", "ok", "the endpoint accepts boto3's default checksums" + unneeded)
    return Check("checksums", "warn", f"the endpoint refuses boto3's default checksums ({refused.message}). The agent "
                 "is not affected (its requests carry their own SHA-256 in a header); other boto3-based tools on "
                 "this endpoint (the aws CLI >= 2.23, boto3 >= 1.36 scripts) are",
                 fix="for those tools: export AWS_REQUEST_CHECKSUM_CALCULATION=when_required "
                     "AWS_RESPONSE_CHECKSUM_VALIDATION=when_required")


def doctor(flags: Mapping[str, Any] | None = None, *, cwd: Cwd = None) -> DoctorReport:
    report = DoctorReport()
    add = report.checks.append
    add(check_git())
    add(check_git_lfs())
    add(check_install(cwd))
    check, resolved = check_settings(flags, cwd)
    add(check)
    later = ["credentials", "bucket", "read/write", "store", "checksums"]

    def skip_rest(why: str) -> DoctorReport:
        for name in later[len(report.checks) - 4:]:
            add(Check(name, "skip", f"skipped: {why}"))
        return report

    if resolved is None:
        return skip_rest("the settings are not usable")
    values = resolved.settings.replace(max_attempts=min(2, resolved.values["max_attempts"]),
                                       timeout=min(DOCTOR_TIMEOUT, resolved.values["timeout"]))
    store = S3Store(values, capabilities_file=Wiring(resolved, cwd).capabilities_file)
    steps: list[tuple[Callable[[], Check], str]] = [
        (lambda: check_identity(values), "no usable credentials"),
        (lambda: check_bucket(store), "the bucket is not usable"),
        (lambda: check_probe(store), "objects cannot be written"),
        (lambda: check_store(store), ""),
        (lambda: check_checksums(store), ""),
    ]
    if values.public_url:
        later.append("public url")
        steps.append((lambda: check_public(store), ""))
    for run, why in steps:
        try:
            check = run()
        except AgentError as exc:
            check = Check(later[len(report.checks) - 4], "fail", exc.message, fix=_fix(exc))
        add(check)
        if check.status == "fail" and why:
            return skip_rest(why)
    return report
