"""Where settings come from and the rules they must satisfy (standard library only).

Sources, highest first: command-line flags (including those in
``lfs.customtransfer.<name>.args``), ``LFS_S3_*`` environment variables, git config
(``lfs-s3-agent.<name>``, local over global), and the committed settings file
``.lfs-s3-agent.toml`` at the repository root. Every value remembers its source so
``lfs-s3-agent config`` can say where it came from.

This is the one settings schema: each field of ``Settings`` (and of ``SourceSettings``,
how a linked source bucket is reached) carries its default, rule and help, and
flags, env names, git keys, the settings file and ``--help`` all derive from it.
Standard library only: the agent builds and checks its settings before it can
afford to import anything heavy. Credentials are never a setting: boto3's own
chain (env, profile, SSO, instance role) provides them.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lfs_s3_agent import gitrepo
from lfs_s3_agent.errors import ConfigError, GitError
from lfs_s3_agent.s3glob import BUCKET_RE

SETTINGS_FILE = ".lfs-s3-agent.toml"
GIT_SECTION = "lfs-s3-agent"
ENV_PREFIX = "LFS_S3_"
#: The endpoint this clone accepted when ``install`` ran ("aws" for none): a committed file that later
#: names another one (a pull request changed it) is refused at init until ``install`` accepts it.
ACCEPTED_ENDPOINT_KEY = f"{GIT_SECTION}.accepted-endpoint"
#: Git config keys of our section that are bookkeeping of ``install``, not settings.
INTERNAL_GIT_KEYS = frozenset({f"{GIT_SECTION}.lfs-install", f"{GIT_SECTION}.lfs-format-added",
                               ACCEPTED_ENDPOINT_KEY})
#: Settings that describe the user, not the store: a committed file (anyone with a pull request can
#: change it) must not choose whose credentials sign requests or weaken TLS. As git-lfs ignores
#: unsafe keys in ``.lfsconfig``, they are ignored there, with a warning.
USER_ONLY = ("profile", "ca_bundle", "tls_verify")

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
    """``http(s)://host[:port]``: no user info, path or query (a path would silently change every key)."""
    match = re.fullmatch(r"(https?)://([^/\s:@\[\]?#]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?(/[^\s]*)?", value)
    if not match:
        raise ValueError(f"{value!r} is not an endpoint URL: use http(s)://host[:port], "
                         "e.g. https://minio.example.com:9000")
    if match[4] and match[4] != "/":
        raise ValueError(f"{value!r} has a path ({match[4]}): the endpoint is http(s)://host[:port] alone; put "
                         "the bucket in --bucket and a key prefix in --prefix")
    return value.rstrip("/")


_LOOPBACK_HOST = re.compile(r"127(\.\d{1,3}){3}|\[::1\]")


def _check_public_url(value: str) -> str:
    """``https://host[:port][/path]`` (a CDN or the bucket's public endpoint); ``http://`` for loopback only."""
    match = re.fullmatch(r"(https?)://([^/\s:@\[\]?#]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?(/[^\s?#]*)?", value)
    if not match:
        raise ValueError(f"{value!r} is not a public URL: use https://host[/path] (no user info, query or fragment), "
                         "e.g. https://d1234.cloudfront.net")
    if match[1] == "http" and not _LOOPBACK_HOST.fullmatch(match[2]):
        raise ValueError(f"{value!r} is plain http: a public URL must be https:// (http:// only for 127.0.0.0/8 "
                         "or [::1], as tests use)")
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
    """One setting: its name in every source, its default, its rule and its help."""

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


def setting(help: str, default: Any = None, *, choices: tuple[str, ...] = (),
            check: Callable[[str], Any] | None = None, example: str = "") -> Any:
    """A field of a settings dataclass whose rule, default and help live in its metadata."""
    return dataclasses.field(default=default, metadata={"spec": (help, choices, check, example)})


def specs(schema: type) -> tuple[FieldSpec, ...]:
    """The ``FieldSpec`` of every field of a settings dataclass, in declaration order."""
    out = []
    for f in dataclasses.fields(schema):
        help_, choices, check, example = f.metadata["spec"]
        out.append(FieldSpec(f.name, help_, f.default, choices, check, example))
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    """The LFS store's settings: the one schema (names, defaults, rules, help) and its typed value.

    Plain Python (no pydantic), so the agent can build and check it before it answers init.
    Credentials are deliberately absent: boto3's own chain provides them.
    """

    bucket: str = setting("S3 bucket that holds the LFS objects (required)", "", check=_check_bucket,
                          example="my-bucket")
    prefix: str = setting("key prefix for this repository's objects", "", check=_check_prefix, example="my-repo")
    region: str | None = setting("bucket region; default: the profile's or AWS_REGION", check=_check_region,
                                 example="eu-west-1")
    endpoint_url: str | None = setting("S3-compatible endpoint (MinIO, Ceph, R2...); default: AWS",
                                       check=_check_endpoint, example="https://minio.example.com:9000")
    profile: str | None = setting("AWS profile (from ~/.aws/config) for credentials", check=_check_text,
                                  example="work")
    addressing_style: str = setting("bucket in the host name (virtual) or the path (path)", "auto",
                                    choices=("auto", "path", "virtual"))
    checksums: str = setting("when_required: only the checksums S3 demands, for stores that reject boto3's "
                             "default CRC32 trailers (R2, some MinIO/Ceph); none: no x-amz-checksum-* header at all "
                             "(Backblaze B2; found out by itself otherwise); the agent's own SHA-256 checks stay",
                             "when_supported", choices=("when_supported", "when_required", "none"))
    sse: str = setting("server-side encryption of uploads", "none", choices=("none", "AES256", "aws:kms"))
    sse_kms_key_id: str | None = setting("KMS key id or ARN, with --sse aws:kms", check=_check_text,
                                         example="alias/lfs")
    storage_class: str | None = setting("storage class of uploads; default: none sent (S3 stores STANDARD)",
                                        choices=STORAGE_CLASSES)
    multipart_threshold: int = setting("objects larger than this move in parallel parts (multipart upload, ranged "
                                       "download)", 16 << 20, check=_size_between(5 << 20, 5 << 30),
                                       example="16MiB")
    part_size: int = setting("size of each part; grows by itself so an object fits in 10,000 parts", 8 << 20,
                             check=_size_between(5 << 20, 5 << 30), example="8MiB")
    concurrency: int = setting("parts in flight per agent process (git-lfs runs several processes); memory in "
                               "flight is at most concurrency x part_size", 8, check=_int_between(1, 64))
    stale_upload_days: int = setting("unfinished multipart uploads younger than this are resumed, older ones "
                                     "aborted (0: always resume)", 7, check=_int_between(0, 3650))
    head_before_put: str = setting("ask (HEAD) before an upload whether the object is there: auto decides by what "
                                   "the store is found to do with If-None-Match (lfs-s3-agent doctor shows it); true: "
                                   "always; false: never (trust If-None-Match)", "auto",
                                   choices=("auto", "true", "false"))
    ca_bundle: str | None = setting("CA certificates (PEM file) to verify the endpoint's TLS certificate, e.g. a "
                                    "private MinIO's", check=_check_text, example="/etc/ssl/minio-ca.pem")
    tls_verify: str = setting("false turns TLS certificate checks off for the custom --endpoint-url only (never "
                              "for AWS); prefer --ca-bundle", "true", choices=("true", "false"))
    max_attempts: int = setting("attempts per S3 request for transient errors (throttling, 5xx, resets), in all",
                                5, check=_int_between(1, 20))
    timeout: int = setting("seconds to wait to connect or for the next bytes of a response", 60,
                           check=_int_between(1, 3600))
    shared_worker: str = setting("true: the agents git-lfs starts hand objects up to multipart_threshold to one "
                                 "warm process per repository and configuration (saves ~0.3 s CPU per agent); "
                                 "false: each agent moves its own", "true", choices=("true", "false"))
    worker_idle: int = setting("seconds the shared worker stays after its last transfer, ready for the next git "
                               "command (~60 MiB of memory while it waits)", 300, check=_int_between(1, 86400))
    # -- open projects and cold storage (issue 16) --
    public_url: str | None = setting("https base URL that serves the store's keys read-only (<public_url>/<key>: a "
                                     "CDN, the bucket's public endpoint, a static mirror); downloads go there as "
                                     "plain GETs, with no credentials", check=_check_public_url,
                                     example="https://d1234.cloudfront.net")
    no_sign_request: str = setting("true: read the store with unsigned requests (a public bucket; no credentials "
                                   "needed to pull; push and gc need credentials)", "false", choices=("false", "true"))
    restore_days: int = setting("days a restored copy of an archived object (Glacier, Deep Archive) stays readable",
                                7, check=_int_between(1, 365))
    restore_tier: str = setting("restore speed and cost for archived objects: Expedited (1-5 min, Glacier only, "
                                "dearest), Standard (3-5 h; 12 h for Deep Archive), Bulk (5-12 h; 48 h, cheapest)",
                                "Standard", choices=("Standard", "Bulk", "Expedited"))

    def describe(self) -> str:
        """Where the objects live, for messages: ``s3://bucket/prefix at endpoint``."""
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS: tuple[FieldSpec, ...] = specs(Settings)
FIELDS_BY_NAME = {spec.name: spec for spec in FIELDS}


@dataclass
class Resolved:
    """Validated setting values, each with the source it came from, and where the repo is."""

    values: dict[str, Any]
    sources: dict[str, str]
    repo: gitrepo.RepoPaths | None = None
    lfs_storage: str | None = None
    #: settings ignored, and why (the pre-push hook shows them in `git push`'s output)
    warnings: list[str] = dataclasses.field(default_factory=list)
    accepted_endpoint: str | None = None  #: what install accepted ("aws" for none), if it ran

    @property
    def settings(self) -> Settings:
        """The typed value (ConfigError when no bucket is configured)."""
        if not self.values.get("bucket"):
            raise ConfigError(NO_BUCKET)
        return Settings(**self.values)


NO_BUCKET = (f"no bucket is configured: this repository commits no {SETTINGS_FILE}; add one with "
             "`lfs-s3-agent install --bucket NAME [--prefix PATH] --save` and commit it (or, for this clone only, "
             "`lfs-s3-agent install --bucket NAME`, or set LFS_S3_BUCKET)")


def load(flags: Mapping[str, Any] | None = None, *, cwd: str | os.PathLike[str] | None = None,
         env: Mapping[str, str] | None = None, require_bucket: bool = True, accept_endpoint: bool = False
         ) -> Resolved:
    """Gather, merge and check settings from every source; ConfigError lists every problem.

    ``accept_endpoint`` (what ``install`` does) skips the check that the committed file's endpoint is
    the one this clone accepted.
    """
    env = os.environ if env is None else env
    try:
        repo: gitrepo.RepoPaths | None = gitrepo.repo_paths(cwd)
    except GitError:
        repo = None
    problems: list[str] = []
    lfs_storage = None
    layers: list[tuple[str, dict[str, Any]]] = []  # lowest precedence first

    warnings: list[str] = []
    if repo is not None and repo.toplevel is not None:
        committed = read_committed_settings(repo.toplevel, problems)
        for name in USER_ONLY:
            if name in committed:
                committed.pop(name)
                warnings.append(f"{SETTINGS_FILE} sets {name}, which only your own configuration may set: ignored "
                                f"(set it for this clone with `lfs-s3-agent install {FIELDS_BY_NAME[name].flag} "
                                "VALUE`, and remove it from the committed file)")
        layers.append((SETTINGS_FILE, committed))
    by_git_key = {spec.git_key: spec for spec in FIELDS}
    from_git: dict[str, tuple[Any, str]] = {}
    accepted = None
    pattern = rf"^({re.escape(GIT_SECTION)}\.|lfs\.storage$)"
    for key, value in gitrepo.read_config(pattern, cwd=cwd if repo else None):
        if key == "lfs.storage":
            lfs_storage = value
        elif key == ACCEPTED_ENDPOINT_KEY:
            accepted = value
        elif key in INTERNAL_GIT_KEYS:
            continue
        elif key in by_git_key:
            from_git[by_git_key[key].name] = (value, f"git config {key}")
        else:
            problems.append(f"unknown setting {key} in git config{did_you_mean(key, by_git_key)}: remove it with "
                            f"`git config --unset {key}`")
    env_layer = {spec.name: (env[spec.env], f"env {spec.env}") for spec in FIELDS if env.get(spec.env, "") != ""}
    flag_layer = {name: (value, f"flag {FIELDS_BY_NAME[name].flag}") for name, value in (flags or {}).items()
                  if value is not None}
    raw: dict[str, tuple[Any, str]] = {}
    for source, layer in layers:
        raw.update({name: (value, source) for name, value in layer.items()})
    for layer_with_sources in (from_git, env_layer, flag_layer):
        raw.update(layer_with_sources)
    values, sources = resolve(FIELDS, raw, problems)
    bucket_invalid = "bucket" in raw and "bucket" not in sources
    problems.extend(cross_field_problems(values, require_bucket=require_bucket and not bucket_invalid))
    if accepted is not None and not accept_endpoint and sources.get("endpoint_url") == SETTINGS_FILE and \
            (values.get("endpoint_url") or "aws") != accepted:
        problems.append(f"{SETTINGS_FILE} now names the endpoint {values['endpoint_url']}, but this clone accepted "
                        f"{accepted} when `lfs-s3-agent install` ran (a commit changed it): check the change, then "
                        "run `lfs-s3-agent install` to accept the new endpoint")
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))
    return Resolved(values=values, sources=sources, repo=repo, lfs_storage=lfs_storage, warnings=warnings,
                    accepted_endpoint=accepted)


def resolve(fields: tuple[FieldSpec, ...], raw: Mapping[str, tuple[Any, str]],
            problems: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Each field's normalized value and its source (``default`` when unset); bad values go to ``problems``."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in fields:
        if spec.name in raw:
            value, source = raw[spec.name]
            try:
                values[spec.name] = spec.normalize(value)
            except ValueError as exc:
                problems.append(f"{spec.name} from {source}: {exc}")
                values[spec.name] = spec.default
                continue
            sources[spec.name] = source
        else:
            values[spec.name] = spec.default
            sources[spec.name] = "default"
    return values, sources


def did_you_mean(name: str, known: Mapping[str, Any]) -> str:
    """`` (did you mean X?)`` for a near miss (``endpoint-url`` for ``endpoint_url``), else a list of names."""
    normalized = {k.replace("-", "_").lower(): k for k in known}
    import difflib  # only for a mistake: not on every agent's start-up

    close = difflib.get_close_matches(name.replace("-", "_").lower(), list(normalized), n=1, cutoff=0.75)
    if close:
        return f" (did you mean {normalized[close[0]]}?)"
    return f" (known: {', '.join(sorted(known))})"


def cross_field_problems(values: Mapping[str, Any], *, require_bucket: bool = True) -> list[str]:
    """Rules that involve more than one setting (or a required one)."""
    problems = []
    if require_bucket and not values.get("bucket"):
        problems.append(NO_BUCKET)
    if values.get("tls_verify") == "false" and not values.get("endpoint_url"):
        problems.append("tls_verify=false applies to a custom endpoint only: set --endpoint-url too "
                        "(TLS checks stay on for AWS)")
    if values.get("sse_kms_key_id") and values.get("sse") != "aws:kms":
        problems.append("sse_kms_key_id is set but sse is not aws:kms: add --sse aws:kms")
    return problems


class CommittedBlob:
    """The settings file as committed at ``HEAD``, read like a file (``open("rb")``)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def open(self, mode: str = "rb") -> io.BytesIO:
        return io.BytesIO(self.data)

    def __str__(self) -> str:
        return f"HEAD:{SETTINGS_FILE}"


def read_committed_settings(toplevel: Path, problems: list[str]) -> dict[str, Any]:
    """The settings file of the working tree, or as committed at ``HEAD`` when it is not checked out.

    During a plain ``git clone`` git-lfs runs the agent while the checkout is being written, before
    the file exists in the working tree (and ``git clone --no-checkout`` never writes it): HEAD has
    it. The subprocess runs only when the working-tree file is missing, so the usual init stays cheap.
    """
    path = toplevel / SETTINGS_FILE
    if path.exists():
        return read_settings_file(path, problems)
    data = gitrepo.committed_file("HEAD", SETTINGS_FILE, cwd=toplevel)
    if data is None:  # no commit yet, or the file is not committed
        return {}
    return read_settings_file(CommittedBlob(data), problems)


def read_settings_file(path: Path | CommittedBlob, problems: list[str]) -> dict[str, Any]:
    import tomllib  # only where a settings file is read (about 6 ms of an agent's start otherwise)

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # TOML is UTF-8 (tomllib raises this)
        problems.append(f"cannot read {path}: {exc}")
        return {}
    known = {}
    for name, value in data.items():
        if name not in FIELDS_BY_NAME:
            problems.append(f"unknown setting {name!r} in {path}{did_you_mean(name, FIELDS_BY_NAME)}")
        elif isinstance(value, (dict, list)):
            problems.append(f"setting {name!r} in {path} must be a single value")
        else:
            known[name] = value
    return known


def render_settings_file(values: Mapping[str, Any]) -> str:
    """TOML text for the committed settings file (non-default, non-secret values only)."""
    lines = [
        "# lfs-s3-agent settings for this repository (no secrets: credentials come from",
        "# the AWS environment, profile, SSO or instance role). After cloning, run:",
        "#   lfs-s3-agent install && git lfs pull",
        "# (nothing at all on a machine set up with `lfs-s3-agent install --global --url ...`)",
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


# -- source buckets (linked originals): the same mechanism, a schema of their own ---------------------

SOURCE_SECTION = "lfs-s3-source"


def truthy(value: Any) -> bool:
    """``1``/``true``/``yes``/``on`` (any case): a truthy value, not mere presence."""
    return str(value if value is not None else "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SourceSettings:
    """How to reach one source bucket of linked objects; per bucket, as sources may differ from the store."""

    region: str | None = setting("the source bucket's region", check=_check_region, example="us-west-2")
    endpoint_url: str | None = setting("the source's S3-compatible endpoint; default: AWS", check=_check_endpoint,
                                       example="https://minio.example.com:9000")
    profile: str | None = setting("AWS profile for the source", check=_check_text, example="data")
    unsigned: bool = setting("send unsigned requests (public data)", False, check=truthy)
    request_payer: bool = setting("the bucket is requester-pays: every request says the requester pays "
                                  "(x-amz-request-payer: requester), so your account is charged for requests and "
                                  "transfer", False, check=truthy)


SOURCE_FIELDS = specs(SourceSettings)
#: git config ``lfs-s3-source.<bucket>.<name>`` names of the source settings
SOURCE_GIT_NAMES = {"region": "region", "endpoint-url": "endpoint_url", "profile": "profile",
                    "no-sign-request": "unsigned", "request-payer": "request_payer"}


def source_git_key(bucket: str, name: str) -> str:
    """The git config key of one source setting: ``lfs-s3-source.<bucket>.<git name>``."""
    git_name = next(g for g, n in SOURCE_GIT_NAMES.items() if n == name)
    return f"{SOURCE_SECTION}.{bucket}.{git_name}"


def source_settings(bucket: str, *, flags: Mapping[str, Any] | None = None, hints: Mapping[str, Any] | None = None,
                    cwd: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
                    ) -> SourceSettings:
    """Flags > git config ``lfs-s3-source.<bucket>.*`` > a link record's hints > ``AWS_NO_SIGN_REQUEST``."""
    env = os.environ if env is None else env
    raw: dict[str, tuple[Any, str]] = {}
    if truthy(env.get("AWS_NO_SIGN_REQUEST")):
        raw["unsigned"] = ("true", "env AWS_NO_SIGN_REQUEST")
    for name, value in (hints or {}).items():
        if value is not None and value is not False:
            raw[name] = (value, "link record")
    prefix = f"{SOURCE_SECTION}.{bucket}."
    try:
        pairs = gitrepo.read_config(rf"^{re.escape(prefix)}", cwd=cwd)
    except GitError:
        pairs = []
    for key, value in pairs:
        git_name = SOURCE_GIT_NAMES.get(key[len(prefix):])
        if git_name:
            raw[git_name] = (value, f"git config {key}")
    for name, value in (flags or {}).items():
        if value is not None and value is not False:
            raw[name] = (value, "flag")
    problems: list[str] = []
    values, _ = resolve(SOURCE_FIELDS, raw, problems)
    if problems:
        raise ConfigError(f"source bucket {bucket!r}: " + "; ".join(problems))
    return SourceSettings(**values)
