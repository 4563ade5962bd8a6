"""Where settings come from and the rules they must satisfy (standard library only).

Sources, highest first: command-line flags (including those in
``lfs.customtransfer.<name>.args``), ``LFS_S3_*`` environment variables, git config
(``lfs-s3-agent.<name>``, local over global), and the committed settings file
``.lfs-s3-agent.toml`` at the repository root. Every value remembers its source so
``lfs-s3-agent config`` can say where it came from.

The rules live here, not only in the pydantic model (``config.Settings``), because
the agent must validate its settings and answer git-lfs's init before it can
afford to import pydantic. Credentials are never a setting: boto3's own chain
(env, profile, SSO, instance role) provides them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfs_s3_agent import gitrepo
from lfs_s3_agent.errors import ConfigError, GitError
from lfs_s3_agent.s3glob import BUCKET_RE

SETTINGS_FILE = ".lfs-s3-agent.toml"
GIT_SECTION = "lfs-s3-agent"
ENV_PREFIX = "LFS_S3_"
#: Git config keys of our section that are bookkeeping of ``install``, not settings.
INTERNAL_GIT_KEYS = frozenset({f"{GIT_SECTION}.lfs-install", f"{GIT_SECTION}.lfs-format-added"})

STORAGE_CLASSES = (
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
    "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "OUTPOSTS", "SNOW", "EXPRESS_ONEZONE",
)


def _check_bucket(value: str) -> str:
    if value.startswith("s3://"):
        raise ValueError(f"give the bucket name alone, not a URL: for {value!r} use "
                         "--bucket NAME --prefix PATH")
    if not BUCKET_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a bucket name (3+ characters: letters, digits, '.', '-', '_')")
    return value


def _check_prefix(value: str) -> str:
    parts = [p for p in value.strip("/").split("/") if p]
    if any(p in (".", "..") for p in parts) or any(ord(c) < 32 for c in value):
        raise ValueError(f"{value!r} is not a usable key prefix (no '.', '..' or control characters)")
    return "/".join(parts)


def _check_endpoint(value: str) -> str:
    if not re.fullmatch(r"https?://([^/\s:\[\]]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?(/\S*)?", value):
        raise ValueError(f"{value!r} is not an endpoint URL: use http(s)://host[:port], "
                         "e.g. https://minio.example.com:9000")
    return value.rstrip("/")


def _check_region(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9-]{2,40}", value):
        raise ValueError(f"{value!r} is not a region name (e.g. us-east-1, eu-west-1, auto)")
    return value


def _check_text(value: str) -> str:
    if not value.strip() or any(ord(c) < 32 for c in value):
        raise ValueError(f"{value!r} is empty or has control characters")
    return value.strip()


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def check(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range ({low} to {high})")
        return number
    return check


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 10**3, "kib": 1 << 10, "m": 1 << 20, "mb": 10**6, "mib": 1 << 20,
          "g": 1 << 30, "gb": 10**9, "gib": 1 << 30}


def parse_size(value: str) -> int:
    """Bytes from ``8MiB``, ``64M``, ``1.5GiB`` or a plain number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"{value!r} is not a size (e.g. 8MiB, 64M, 1GiB or a number of bytes)")
    return int(float(match.group(1)) * _UNITS[unit])


def _size_between(low: int, high: int) -> Callable[[str], int]:
    def check(value: str) -> int:
        number = parse_size(value)
        if not low <= number <= high:
            raise ValueError(f"{value} is out of range ({low >> 20} MiB to {high >> 20} MiB)")
        return number
    return check


@dataclass(frozen=True)
class FieldSpec:
    """One setting: its name in every source, its default, and its rule."""

    name: str
    help: str
    default: Any = None
    choices: tuple[str, ...] = ()
    check: Callable[[str], Any] | None = None
    example: str = ""

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def git_key(self) -> str:
        return f"{GIT_SECTION}.{self.name.replace('_', '-')}"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def normalize(self, raw: Any) -> Any:
        value = str(raw).strip() if not isinstance(raw, bool) else str(raw).lower()
        if self.choices:
            if value not in self.choices:
                raise ValueError(f"{value!r} is not one of: {', '.join(self.choices)}")
            return value
        return self.check(value) if self.check else value


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("bucket", "S3 bucket that holds the LFS objects (required)", check=_check_bucket,
              example="my-bucket"),
    FieldSpec("prefix", "key prefix for this repository's objects", default="", check=_check_prefix,
              example="my-repo"),
    FieldSpec("region", "bucket region; default: the profile's or AWS_REGION", check=_check_region,
              example="eu-west-1"),
    FieldSpec("endpoint_url", "S3-compatible endpoint (MinIO, Ceph, R2...); default: AWS",
              check=_check_endpoint, example="https://minio.example.com:9000"),
    FieldSpec("profile", "AWS profile (from ~/.aws/config) for credentials", check=_check_text,
              example="work"),
    FieldSpec("addressing_style", "bucket in the host name (virtual) or the path (path)",
              default="auto", choices=("auto", "path", "virtual")),
    FieldSpec("checksums", "when_required: only the checksums S3 demands; for stores that reject "
              "boto3's default CRC32 trailers (R2, some MinIO/Ceph)", default="when_supported",
              choices=("when_supported", "when_required")),
    FieldSpec("sse", "server-side encryption of uploads", default="none",
              choices=("none", "AES256", "aws:kms")),
    FieldSpec("sse_kms_key_id", "KMS key id or ARN, with --sse aws:kms", check=_check_text,
              example="alias/lfs"),
    FieldSpec("storage_class", "storage class of uploads; default: none sent (S3 stores STANDARD)",
              choices=STORAGE_CLASSES),
    FieldSpec("multipart_threshold", "objects larger than this move in parallel parts (multipart upload, "
              "ranged download)", default=16 << 20, check=_size_between(5 << 20, 5 << 30), example="16MiB"),
    FieldSpec("part_size", "size of each part; grows by itself so an object fits in 10,000 parts",
              default=8 << 20, check=_size_between(5 << 20, 5 << 30), example="8MiB"),
    FieldSpec("concurrency", "parts in flight per agent process (git-lfs runs several processes); memory "
              "in flight is at most concurrency x part_size", default=8, check=_int_between(1, 64)),
    FieldSpec("stale_upload_days", "unfinished multipart uploads younger than this are resumed, older "
              "ones aborted (0: always resume)", default=7, check=_int_between(0, 3650)),
    FieldSpec("head_before_put", "true: ask (HEAD) before every upload, for stores that ignore If-None-Match "
              "and would otherwise take objects they already have again", default="false",
              choices=("false", "true")),
    FieldSpec("ca_bundle", "CA certificates (PEM file) to verify the endpoint's TLS certificate, e.g. a "
              "private MinIO's", check=_check_text, example="/etc/ssl/minio-ca.pem"),
    FieldSpec("tls_verify", "false turns TLS certificate checks off for the custom --endpoint-url only "
              "(never for AWS); prefer --ca-bundle", default="true", choices=("true", "false")),
    FieldSpec("max_attempts", "attempts per S3 request for transient errors (throttling, 5xx, resets)",
              default=5, check=_int_between(1, 20)),
    FieldSpec("timeout", "seconds to wait to connect or for the next bytes of a response",
              default=60, check=_int_between(1, 3600)),
    FieldSpec("shared_worker", "true: the agents git-lfs starts hand objects up to multipart_threshold to one "
              "warm process per repository and configuration (saves ~0.3 s CPU per agent); false: each agent "
              "moves its own", default="true", choices=("true", "false")),
    FieldSpec("worker_idle", "seconds the shared worker stays after its last transfer, ready for the next "
              "git command", default=60, check=_int_between(1, 86400)),
)

FIELDS_BY_NAME = {spec.name: spec for spec in FIELDS}


@dataclass
class Resolved:
    """Validated setting values, each with the source it came from, and where the repo is."""

    values: dict[str, Any]
    sources: dict[str, str]
    repo: gitrepo.RepoPaths | None = None
    lfs_storage: str | None = None
    problems: list[str] = field(default_factory=list)


def load(flags: Mapping[str, Any] | None = None, *, cwd: str | os.PathLike[str] | None = None,
         env: Mapping[str, str] | None = None, require_bucket: bool = True) -> Resolved:
    """Gather, merge and check settings from every source; ConfigError lists every problem."""
    env = os.environ if env is None else env
    try:
        repo: gitrepo.RepoPaths | None = gitrepo.repo_paths(cwd)
    except GitError:
        repo = None
    raw: dict[str, tuple[Any, str]] = {}
    problems: list[str] = []
    lfs_storage = None

    # Lowest precedence first; each later source overwrites.
    if repo is not None and repo.toplevel is not None:
        path = repo.toplevel / SETTINGS_FILE
        for name, value in read_settings_file(path, problems).items():
            raw[name] = (value, SETTINGS_FILE)
    by_git_key = {spec.git_key: spec for spec in FIELDS}
    pattern = rf"^({re.escape(GIT_SECTION)}\.|lfs\.storage$)"
    for key, value in gitrepo.read_config(pattern, cwd=cwd if repo else None):
        if key == "lfs.storage":
            lfs_storage = value
        elif key in INTERNAL_GIT_KEYS:
            continue
        elif key in by_git_key:
            raw[by_git_key[key].name] = (value, f"git config {key}")
        else:
            problems.append(f"unknown setting {key} in git config: remove it with "
                            f"`git config --unset {key}` (known: {_known(by_git_key)})")
    for spec in FIELDS:
        if env.get(spec.env, "") != "":
            raw[spec.name] = (env[spec.env], f"env {spec.env}")
    for name, value in (flags or {}).items():
        if value is not None:
            raw[name] = (value, f"flag {FIELDS_BY_NAME[name].flag}")

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in FIELDS:
        if spec.name in raw:
            value, source = raw[spec.name]
            try:
                values[spec.name] = spec.normalize(value)
            except ValueError as exc:
                problems.append(f"{spec.name} from {source}: {exc}")
                continue
            sources[spec.name] = source
        else:
            values[spec.name] = spec.default
            sources[spec.name] = "default"
    bucket_invalid = "bucket" in raw and "bucket" not in sources
    problems.extend(cross_field_problems(values, require_bucket=require_bucket and not bucket_invalid))
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))
    return Resolved(values=values, sources=sources, repo=repo, lfs_storage=lfs_storage)


def cross_field_problems(values: Mapping[str, Any], *, require_bucket: bool = True) -> list[str]:
    """Rules that involve more than one setting (or a required one)."""
    problems = []
    if require_bucket and not values.get("bucket"):
        problems.append(
            "no bucket is configured: run `lfs-s3-agent install --bucket NAME [--prefix PATH]` "
            "in this repository (or set LFS_S3_BUCKET)"
        )
    if values.get("tls_verify") == "false" and not values.get("endpoint_url"):
        problems.append("tls_verify=false applies to a custom endpoint only: set --endpoint-url too "
                        "(TLS checks stay on for AWS)")
    if values.get("sse_kms_key_id") and values.get("sse") != "aws:kms":
        problems.append("sse_kms_key_id is set but sse is not aws:kms: add --sse aws:kms")
    return problems


def read_settings_file(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"cannot read {path}: {exc}")
        return {}
    known = {}
    for name, value in data.items():
        if name not in FIELDS_BY_NAME:
            problems.append(f"unknown setting {name!r} in {path} (known: {_known(FIELDS_BY_NAME)})")
        elif isinstance(value, (dict, list)):
            problems.append(f"setting {name!r} in {path} must be a single value")
        else:
            known[name] = value
    return known


def _known(names: Mapping[str, Any]) -> str:
    return ", ".join(sorted(names))


def render_settings_file(values: Mapping[str, Any]) -> str:
    """TOML text for the committed settings file (non-default, non-secret values only)."""
    lines = [
        "# lfs-s3-agent settings for this repository (no secrets: credentials come from",
        "# the AWS environment, profile, SSO or instance role). After cloning, run:",
        "#   lfs-s3-agent install && git lfs pull",
    ]
    for spec in FIELDS:
        value = values.get(spec.name)
        if value is None or value == spec.default:
            continue
        if isinstance(value, int):
            lines.append(f"{spec.name} = {value}")
        else:
            escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{spec.name} = "{escaped}"')
    return "\n".join(lines) + "\n"
