"""The ``link``, ``add-checksum`` and ``checkout`` commands (Kart-style linked datasets).

``link`` turns objects that already live in S3 into LFS pointers without copying them
into the LFS store: the oid comes from S3's own full-object SHA-256 checksum (a
composite multipart checksum is refused, never recorded), or, with ``--hash-missing``,
from streaming the bytes once. Link records go to this clone's git dir; the push that
carries the pointers records them in the LFS store. ``add-checksum`` gives objects a
full-object SHA-256 in place; it is the only command that writes to a source bucket.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfs_s3_agent import gitrepo, settings
from lfs_s3_agent.commands.common import plural
from lfs_s3_agent.console import Progress, human_bytes
from lfs_s3_agent.errors import AgentError, Code, ConfigError, LocalFileError
from lfs_s3_agent.lfsdirs import LfsDirs, download_into_objects
from lfs_s3_agent.linked import LocalLinks, SourceClients, local_links_dir
from lfs_s3_agent.links import LinkRecord, full_object_sha256
from lfs_s3_agent.pointer import MAX_POINTER_SIZE, Pointer
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.s3.client import S3Client
from lfs_s3_agent.s3.errors import requester_pays_hint, translate
from lfs_s3_agent.s3.retry import Attempts
from lfs_s3_agent.s3.transfer import Knobs, fetch, hash_object, paginate
from lfs_s3_agent.s3glob import S3Pattern
from lfs_s3_agent.settings import SourceSettings, source_settings

COPY_LIMIT = 5 * 1000**3  #: CopyObject's largest source (5 GB)


class LinkError(AgentError):
    code = Code.BAD_REQUEST


@dataclass
class Source:
    """One matched object in a source bucket, and what we learned about it."""

    pattern: S3Pattern
    key: str
    size: int = 0
    etag: str | None = None
    version_id: str | None = None
    oid: str | None = None
    why: str = ""  #: why there is no oid
    head: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return f"s3://{self.pattern.bucket}/{self.key}"


class Sources:
    """Clients for source buckets, each with its own settings, made once.

    A source with no endpoint of its own (flag, git config) is reached like the LFS store when the store
    is on a custom endpoint (its endpoint, region and profile: MinIO and Ceph users keep their data
    there); ``--source-endpoint-url aws`` says the source is on AWS.
    """

    def __init__(self, flags: Mapping[str, Any], store: settings.Settings, cwd: str | os.PathLike[str] | None,
                 jobs: int = 16) -> None:
        self.given = {k: v for k, v in flags.items() if v not in (None, False)}
        self.on_aws = str(flags.get("endpoint_url") or "").lower() == "aws"
        self.flags = {**flags, "endpoint_url": None} if self.on_aws else flags
        self.store = store
        self.knobs = Knobs.of(store)
        self.cwd = cwd
        self.requests: dict[str, int] = {}  #: requests made to source buckets, by operation
        self.clients = SourceClients(store, self.requests, pool=max(10, jobs))
        self._sources: dict[str, SourceSettings] = {}

    def get(self, bucket: str) -> tuple[SourceSettings, S3Client]:
        if bucket not in self._sources:
            source = source_settings(bucket, flags=self.flags, cwd=self.cwd)
            if source.endpoint_url is None and not self.on_aws and self.store.endpoint_url:
                source = dataclasses.replace(source, endpoint_url=self.store.endpoint_url,
                                             region=source.region or self.store.region,
                                             profile=source.profile or (None if source.unsigned
                                                                        else self.store.profile))
            self._sources[bucket] = source
        source = self._sources[bucket]
        return source, self.clients.get(source)

    def flag_words(self) -> list[str]:
        """The source flags the user gave, as they would be typed again (for the commands we print)."""
        words = []
        for name, flag in (("endpoint_url", "--source-endpoint-url"), ("region", "--source-region"),
                           ("profile", "--source-profile")):
            if self.given.get(name):
                words += [flag, str(self.given[name])]
        if self.given.get("unsigned"):
            words.append("--no-sign-request")
        if self.given.get("request_payer"):
            words.append("--request-payer")
        return words

    def translate(self, bucket: str, key: str | None = None) -> Callable[[BaseException], AgentError]:
        source, _ = self.get(bucket)

        def tr(exc: BaseException) -> AgentError:
            err = translate(exc, bucket=bucket, key=key, endpoint=source.endpoint_url)
            if err.code == Code.ACCESS_DENIED and not source.request_payer:
                err = requester_pays_hint(err, bucket)
            if err.code not in (Code.CREDENTIALS, Code.ACCESS_DENIED, Code.NO_SUCH_BUCKET, Code.NETWORK,
                                Code.TIMEOUT, Code.S3_ERROR):
                return err
            where = source.endpoint_url or "AWS" + (f" ({source.region})" if source.region else "")
            hint = (f"; source bucket {bucket} was reached at {where}"
                    f"{' without signing' if source.unsigned else ''}"
                    f"{' as requester-pays' if source.request_payer else ''}: set --source-endpoint-url (aws for "
                    f"AWS), --source-region, --source-profile, --no-sign-request or --request-payer, or git config "
                    f"lfs-s3-source.{bucket}.endpoint-url (also .region, .profile, .no-sign-request, .request-payer)")
            if err.code == Code.CREDENTIALS and not source.unsigned:
                hint = "; for a public bucket, pass --no-sign-request" + hint
            return AgentError(err.message + hint, code=err.code, s3_code=err.s3_code, status=err.status,
                              transient=err.transient)

        return tr


def _sources_for(flags: Mapping[str, Any], cwd: str | os.PathLike[str] | None, jobs: int = 16) -> Sources:
    values = settings.load(cwd=cwd, require_bucket=False).values
    return Sources(flags, settings.Settings(**{**values, "bucket": values["bucket"] or "unset"}), cwd, jobs)


def expand(patterns: list[str], sources: Sources) -> list[Source]:
    """Every object the patterns match, listed from each pattern's literal prefix; none is an error."""
    found: dict[tuple[str, str], Source] = {}
    empty = []
    for text in patterns:
        try:
            pattern = S3Pattern.parse(text)
        except ValueError as exc:
            raise LinkError(str(exc)) from None
        _, client = sources.get(pattern.bucket)
        tr = sources.translate(pattern.bucket)
        matched = 0
        if not pattern.is_glob and not pattern.is_prefix:
            try:
                head = client.head_object(Bucket=pattern.bucket, Key=pattern.pattern, ChecksumMode="ENABLED")
                found[(pattern.bucket, pattern.pattern)] = _described(Source(pattern, pattern.pattern), head)
                continue
            except Exception as exc:
                err = tr(exc)
                if err.code != Code.NOT_FOUND:
                    raise err from None
            pattern = S3Pattern.parse(text.rstrip("/") + "/")  # a plain key that is a "directory"
        try:
            for obj in paginate(client, "list_objects_v2", "Contents", Bucket=pattern.bucket,
                                Prefix=pattern.list_prefix):
                key = obj["Key"]
                if pattern.matches(key):
                    matched += 1
                    found.setdefault((pattern.bucket, key), Source(pattern, key, size=int(obj["Size"]),
                                                                     etag=obj.get("ETag")))
        except Exception as exc:
            raise tr(exc) from None
        if not matched:
            empty.append(text)
    if empty:
        raise LinkError("no objects match " + ", ".join(repr(p) for p in empty)
                        + ": check the bucket, the path and the pattern (`*` stays within one '/' level; use `**`)")
    return list(found.values())


def _described(source: Source, head: dict[str, Any]) -> Source:
    source.head = head
    source.size = int(head["ContentLength"])
    source.etag = head.get("ETag")
    source.version_id = head.get("VersionId") if head.get("VersionId") not in (None, "null") else None
    source.oid, source.why = full_object_sha256(head)
    return source


def head_all(items: list[Source], sources: Sources, jobs: int, quiet: bool = False) -> None:
    """HEAD every object (with checksums) in parallel, filling in oid, version and ETag."""
    todo = [s for s in items if not s.head]

    def one(item: Source) -> None:
        _, client = sources.get(item.pattern.bucket)
        try:
            head = client.head_object(Bucket=item.pattern.bucket, Key=item.key, ChecksumMode="ENABLED")
        except Exception as exc:
            raise sources.translate(item.pattern.bucket, item.key)(exc) from None
        _described(item, head)
        bar.advance(1, item.size)

    with Progress("checking checksums", len(todo), quiet=quiet) as bar, ThreadPoolExecutor(jobs) as pool:
        for _ in pool.map(one, todo):
            pass


def _remedies(missing: list[Source], patterns: list[str], flags: list[str], command: str = "link") -> str:
    shown = "\n".join(f"  {s.url}: {s.why}" for s in missing[:20])
    more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
    quoted = shlex.join([*patterns, *flags])
    return (f"{len(missing)} object(s) have no full-object SHA-256 checksum, so their oid cannot be read "
            f"from S3:\n{shown}{more}\nEither:\n"
            f"  lfs-s3-agent add-checksum {quoted}   # adds SHA-256 checksums in place (writes to the bucket), "
            f"then run `lfs-s3-agent {command}` again\n"
            f"or add --hash-missing to this command     # reads those objects once to hash them; writes nothing to "
            f"their bucket")


@dataclass
class LinkReport:
    linked: int = 0
    bytes_referenced: int = 0
    bytes_downloaded: int = 0
    hashed: int = 0
    paths: list[str] = field(default_factory=list)
    gitattributes: str | None = None
    hook_note: str | None = None  #: why the pre-push step linked pushes need is not in place

    to: str = ""

    @property
    def notes(self) -> list[str]:
        return [self.hook_note] if self.hook_note else []

    def summary(self) -> str:
        text = (f"linked {plural(self.linked, 'object')}, {human_bytes(self.bytes_referenced)} referenced, "
                f"{human_bytes(self.bytes_downloaded)} downloaded")
        return text + (f" ({self.hashed} hashed by reading them)" if self.hashed else "")

    def to_json(self) -> dict[str, Any]:
        return {"linked": self.linked, "bytes_referenced": self.bytes_referenced,
                "bytes_downloaded": self.bytes_downloaded, "hashed": self.hashed, "paths": self.paths,
                "gitattributes": self.gitattributes}

    def render(self) -> list[str]:
        lines = [f"added to .gitattributes: {self.gitattributes}"] if self.gitattributes else []
        lines.append(self.summary())
        lines.append("next: git add .gitattributes " + shlex.quote(self.to) + " && git commit -m 'link data' && "
                     "git push")
        return lines


@dataclass
class Plan:
    """What ``link`` and ``import`` share before any byte moves: the matched objects (HEADed, oids read from
    their checksums where they have one), the file each one becomes, and this clone's paths."""

    patterns: list[str]
    to: str
    toplevel: Path
    dest_dir: Path
    repo: gitrepo.RepoPaths
    sources: Sources
    items: list[Source]
    missing: list[Source]  #: no full-object SHA-256: hashed by reading them (--hash-missing)
    targets: dict[Path, Source]
    unchanged: set[Path]  #: files that already hold their object's content
    storage: Path  #: git-lfs's storage directory


def plan(patterns: list[str], to: str, *, command: str, hash_missing: bool, force: bool,
         source_flags: Mapping[str, Any] | None, jobs: int, cwd: str | os.PathLike[str] | None,
         quiet: bool) -> Plan:
    """Expand the patterns, HEAD every match and decide where each file goes; nothing is written yet."""
    repo = gitrepo.repo_paths(cwd)
    if repo.toplevel is None:
        raise ConfigError(f"{command} needs a working tree (this is a bare repository)")
    toplevel = repo.toplevel.resolve()
    dest_dir = (Path(cwd or os.getcwd()) / to).resolve()
    if dest_dir != toplevel and toplevel not in dest_dir.parents:
        raise LinkError(f"--to {to} is outside the repository at {toplevel}")
    sources = _sources_for(source_flags or {}, cwd, jobs)
    items = expand(patterns, sources)
    head_all(items, sources, jobs, quiet=quiet)
    missing = [s for s in items if s.oid is None]
    if missing and not hash_missing:
        raise LinkError(_remedies(missing, patterns, sources.flag_words(), command))

    targets: dict[Path, Source] = {}
    for item in items:
        relative = item.pattern.relative(item.key)
        if not relative or any(part in ("", ".", "..") for part in relative.split("/")):
            raise LinkError(f"{item.url}: cannot place {relative!r} under --to {to}")
        path = dest_dir / relative
        if path in targets:
            raise LinkError(f"{item.url} and {targets[path].url} would both be written to {path}")
        targets[path] = item
    unchanged = _refuse_overwrites(targets, force)
    storage = LfsDirs.of(repo, _lfs_storage(cwd)).root
    return Plan(patterns, to, toplevel, dest_dir, repo, sources, items, missing, targets, unchanged, storage)


def place(p: Plan, *, checkout: bool, cwd: str | os.PathLike[str] | None,
          skip: set[str] | None = None) -> tuple[list[str], str | None, str | None]:
    """Write each file (its content from lfs/objects with ``checkout``, else its pointer), atomically, except
    the objects in ``skip``; make git-lfs track them. (paths, the .gitattributes line added, a note about the
    pre-push hook when pointers without local bytes need ours and it could not be put in place)."""
    paths = []
    written = []
    for path, item in p.targets.items():
        assert item.oid is not None
        if skip and item.oid in skip:
            continue
        written.append(path)
        paths.append(str(path.relative_to(p.toplevel)))
        if path in p.unchanged:
            continue  # already this object's content: linked before
        path.parent.mkdir(parents=True, exist_ok=True)
        if checkout:
            _copy_atomic(object_path(p.storage, item.oid), path)
        else:
            _write_atomic(path, Pointer(item.oid, item.size).encode())
    gitattributes = ensure_lfs_tracked(p.toplevel, p.dest_dir, written, cwd=cwd)
    refresh_index(p.toplevel, written)
    hook_note = None
    if not checkout and written:
        # Pointers without local bytes need our pre-push step. `install` puts it in place, but a clone
        # configured only by `install --global` has git-lfs's stock hook: put ours there now.
        from lfs_s3_agent.commands import prepush
        from lfs_s3_agent.commands.install import custom_hook_note

        hook, outcome = prepush.install_hook(cwd)
        if outcome == "custom":
            hook_note = custom_hook_note(hook)
    return paths, gitattributes, hook_note


def link(patterns: list[str], to: str, *, checkout: bool = True, hash_missing: bool = False, force: bool = False,
         source_flags: Mapping[str, Any] | None = None, jobs: int = 16, cwd: str | os.PathLike[str] | None = None,
         quiet: bool = False) -> LinkReport:
    """Link S3 objects as LFS files under ``to``: pointers and link records, bytes checked out unless not asked."""
    p = plan(patterns, to, command="link", hash_missing=hash_missing, force=force, source_flags=source_flags,
             jobs=jobs, cwd=cwd, quiet=quiet)
    items, missing, sources, storage = p.items, p.missing, p.sources, p.storage
    report = LinkReport()
    if missing:
        report.hashed = len(missing)
        report.bytes_downloaded += _hash_missing(missing, sources, storage if checkout else None, jobs, quiet)

    links = LocalLinks(local_links_dir(p.repo.common_dir))
    for item in items:
        source, _ = sources.get(item.pattern.bucket)
        assert item.oid is not None
        links.put(LinkRecord(oid=item.oid, size=item.size, bucket=item.pattern.bucket, key=item.key,
                             version_id=item.version_id, etag=item.etag, region=source.region,
                             endpoint_url=source.endpoint_url, unsigned=source.unsigned,
                             request_payer=source.request_payer))
    trust_flagged_endpoints(source_flags or {}, {item.pattern.bucket for item in items}, cwd)

    if checkout:
        report.bytes_downloaded += _fetch_objects([s for s in items if s not in missing], sources, storage, jobs,
                                                  quiet)
    report.paths, report.gitattributes, report.hook_note = place(p, checkout=checkout, cwd=cwd)
    report.linked = len(items)
    report.to = to
    report.bytes_referenced = sum(s.size for s in items)
    return report


def trust_flagged_endpoints(flags: Mapping[str, Any], buckets: set[str], cwd: str | os.PathLike[str] | None) -> None:
    """``--source-endpoint-url`` is the user naming a source's endpoint: this clone keeps trusting it for those
    buckets (git config ``lfs-s3-source.<bucket>.endpoint-url``), as its later pulls of the records need.
    ``--request-payer`` is the user agreeing to pay for those buckets: this clone keeps that too
    (``lfs-s3-source.<bucket>.request-payer``), so its own pulls and checkouts of them work."""
    remembered = []
    if flags.get("endpoint_url"):
        remembered.append(("endpoint_url", settings.FIELDS_BY_NAME["endpoint_url"].normalize(flags["endpoint_url"])))
    if flags.get("request_payer"):
        remembered.append(("request_payer", "true"))
    for bucket in sorted(buckets):
        for name, value in remembered:
            key = settings.source_git_key(bucket, name)
            if not gitrepo.read_config(rf"^{re.escape(key)}$", cwd=cwd):
                gitrepo.set_config(key, value, cwd=cwd)


def refresh_index(toplevel: Path, paths: list[Path]) -> None:
    """Tell git that rewritten files still match the index (as git-lfs does after its checkout).

    Replacing a pointer with content changes the file's size, and git reports it as modified
    until the index entry is refreshed through the clean filter.
    """
    if paths:
        listed = "".join(str(p.relative_to(toplevel)) + "\n" for p in paths)
        subprocess.run(["git", "update-index", "-q", "--refresh", "--stdin"], input=listed, text=True,
                       cwd=toplevel, capture_output=True, check=False)


def _lfs_storage(cwd: str | os.PathLike[str] | None) -> str | None:
    pairs = gitrepo.read_config(r"^lfs\.storage$", cwd=cwd)
    return pairs[-1][1] if pairs else None


def _refuse_overwrites(targets: Mapping[Path, Source], force: bool) -> set[Path]:
    """Refuse to replace files that are neither pointers nor the object's content; return the latter."""
    blocked = []
    unchanged = set()
    for path, item in targets.items():
        if path.is_dir():
            raise LinkError(f"{path} is a directory; cannot write a file there")
        if path.exists() and not force:
            with open(path, "rb") as fh:
                if Pointer.decode(fh.read(MAX_POINTER_SIZE + 1)) is not None:
                    continue
            if item.oid is not None and path.stat().st_size == item.size and _sha256_file(path) == item.oid:
                unchanged.add(path)
            else:
                blocked.append(str(path))
    if blocked:
        listed = "\n  ".join(blocked[:20])
        raise LinkError(f"{len(blocked)} file(s) exist and are not LFS pointers; nothing was written:\n  {listed}\n"
                        "Move them away, or pass --force to replace them")
    return unchanged


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def object_path(storage: Path, oid: str) -> Path:
    """Where git-lfs keeps an object's bytes."""
    return LfsDirs(storage).object_path(oid)


def _download_to_storage(client: S3Client, bucket: str, key: str, size: int, storage: Path, knobs: Knobs,
                         version_id: str | None, etag: str | None, expected: str | None) -> str:
    """Fetch one object into git-lfs's object store (verified); return its SHA-256."""
    def fill(sink: Any) -> str:
        return fetch(client, bucket=bucket, key=key, size=size, sink=sink,
                     progress=ProgressReporter(size, lambda a, b: None), knobs=knobs, version_id=version_id,
                     etag=etag, expect=expected)

    return download_into_objects(fill, LfsDirs(storage), oid=expected, size=size, where=lambda: f"s3://{bucket}/{key}")


def _hash_missing(items: list[Source], sources: Sources, storage: Path | None, jobs: int, quiet: bool) -> int:
    """Stream objects without a usable checksum once to learn their oid (kept in the LFS store if given)."""

    def one(item: Source) -> None:
        bucket = item.pattern.bucket
        _, client = sources.get(bucket)
        pin = {"version_id": item.version_id, "etag": None if item.version_id else item.etag}
        if storage is not None:
            try:
                item.oid = _download_to_storage(client, bucket, item.key, item.size, storage, sources.knobs,
                                                expected=None, **pin)
            except AgentError as err:
                raise sources.translate(bucket, item.key)(err) from None
        else:
            item.oid = _hash_stream(client, item, sources, **pin)
        bar.advance(1, item.size)

    with Progress("hashing", len(items), quiet=quiet) as bar, ThreadPoolExecutor(max(1, min(jobs, 4))) as pool:
        for _ in pool.map(one, items):
            pass
    return sum(s.size for s in items)


def _hash_stream(client: S3Client, item: Source, sources: Sources, version_id: str | None, etag: str | None) -> str:
    try:
        return hash_object(client, bucket=item.pattern.bucket, key=item.key, size=item.size,
                           attempts=Attempts(sources.knobs.max_attempts),
                           extra={"VersionId": version_id} if version_id else {}, etag=etag)
    except AgentError as err:
        raise sources.translate(item.pattern.bucket, item.key)(err) from None


def _fetch_objects(items: list[Source], sources: Sources, storage: Path, jobs: int, quiet: bool) -> int:
    todo = [s for s in items if s.oid and not object_path(storage, s.oid).exists()]

    def one(item: Source) -> None:
        bucket = item.pattern.bucket
        _, client = sources.get(bucket)
        try:
            _download_to_storage(client, bucket, item.key, item.size, storage, sources.knobs,
                                 version_id=item.version_id, etag=None if item.version_id else item.etag,
                                 expected=item.oid)
        except AgentError as err:
            raise sources.translate(bucket, item.key)(err) from None
        bar.advance(1, item.size)

    with Progress("downloading", len(todo), quiet=quiet) as bar, ThreadPoolExecutor(max(1, min(jobs, 4))) as pool:
        for _ in pool.map(one, todo):
            pass
    return sum(s.size for s in todo)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of files we create in the working tree, as git would create them.
FILE_MODE = 0o666 & ~_umask()


def _temp_beside(path: Path) -> tuple[int, str]:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600
    return fd, tmp


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy_atomic(src: Path, path: Path) -> None:
    fd, tmp = _temp_beside(path)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _gitattributes_pattern(relative: str) -> str:
    # gitattributes patterns cannot be quoted; git-lfs writes spaces as [[:space:]] too.
    return relative.replace(" ", "[[:space:]]")


def ensure_lfs_tracked(toplevel: Path, dest_dir: Path, paths: list[Path],
                       cwd: str | os.PathLike[str] | None) -> str | None:
    """Make sure git-lfs filters the linked paths; return the .gitattributes line added, if any."""
    if not paths:
        return None
    rel = [str(p.relative_to(toplevel)) for p in paths]
    proc = gitrepo.git("check-attr", "-z", "filter", "--", *rel, cwd=toplevel)
    fields = proc.stdout.split("\0")
    untracked = [fields[i] for i in range(0, len(fields) - 2, 3) if fields[i + 2] != "lfs"]
    if not untracked:
        return None
    if dest_dir == toplevel:
        lines = [f"{_gitattributes_pattern(r)} filter=lfs diff=lfs merge=lfs -text" for r in untracked]
    else:
        directory = _gitattributes_pattern(str(dest_dir.relative_to(toplevel)))
        lines = [f"{directory}/** filter=lfs diff=lfs merge=lfs -text"]
    attributes = toplevel / ".gitattributes"
    existing = attributes.read_text(encoding="utf-8") if attributes.exists() else ""
    with open(attributes, "a", encoding="utf-8") as fh:
        if existing and not existing.endswith("\n"):
            fh.write("\n")
        fh.write("\n".join(lines) + "\n")
    return "\n".join(lines)


# -- add-checksum --------------------------------------------------------------------------------

@dataclass
class ChecksumReport:
    added: list[str] = field(default_factory=list)
    already: int = 0
    too_large: list[str] = field(default_factory=list)
    dry_run: bool = False
    not_kept: list[str] = field(default_factory=list)  #: copied, but the store kept no SHA-256 checksum
    refreshed: int = 0  #: link records brought up to date with the copies' new ETags

    @property
    def exit_status(self) -> int:
        return 1 if self.too_large or self.not_kept else 0

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "already": self.already, "too_large": self.too_large, "dry_run": self.dry_run,
                "not_kept": self.not_kept, "refreshed_records": self.refreshed}

    def render(self) -> list[str]:
        verb = "would add" if self.dry_run else "added"
        lines = [f"{verb} SHA-256: {url}" for url in self.added]
        lines.append(f"{verb} checksums to {plural(len(self.added), 'object')}; {self.already} already had one")
        return lines

    @property
    def notes(self) -> list[str]:
        notes = []
        if self.added and not self.dry_run:
            notes.append("note: copying in place does not keep ACLs; re-apply any object ACLs you rely on")
        notes.extend(f"skipped (over 5 GB, CopyObject cannot add a full-object SHA-256 in place): {url}; use "
                     "`lfs-s3-agent link --hash-missing` for it" for url in self.too_large)
        notes.extend(f"the store kept no SHA-256 checksum for {url} (it ignores x-amz-checksum-*): link it with "
                     "`lfs-s3-agent link --hash-missing` instead" for url in self.not_kept)
        if self.refreshed:
            notes.append(f"refreshed {plural(self.refreshed, 'link record')} (the copies have new ETags; same bytes)")
        return notes


_KEPT_HEADERS = {"ContentType": "ContentType", "CacheControl": "CacheControl",
                 "ContentDisposition": "ContentDisposition", "ContentEncoding": "ContentEncoding",
                 "ContentLanguage": "ContentLanguage", "Expires": "Expires",
                 "WebsiteRedirectLocation": "WebsiteRedirectLocation", "SSEKMSKeyId": "SSEKMSKeyId",
                 "ServerSideEncryption": "ServerSideEncryption"}


def add_checksum(patterns: list[str], *, dry_run: bool = False, source_flags: Mapping[str, Any] | None = None,
                 jobs: int = 16, cwd: str | os.PathLike[str] | None = None, quiet: bool = False) -> ChecksumReport:
    """Copy each object without a full-object SHA-256 onto itself with one (metadata, type, class kept)."""
    sources = _sources_for(source_flags or {}, cwd, jobs)
    items = expand(patterns, sources)
    head_all(items, sources, jobs, quiet=quiet)
    report = ChecksumReport(dry_run=dry_run)
    todo = []
    for item in items:
        if item.oid is not None:
            report.already += 1
        elif item.size > COPY_LIMIT:
            report.too_large.append(item.url)
        else:
            todo.append(item)
    if dry_run:
        report.added = [s.url for s in todo]
        return report
    linked, records = _known_records(cwd)

    def one(item: Source) -> None:
        bucket = item.pattern.bucket
        source, client = sources.get(bucket)
        if source.unsigned:
            raise LinkError("add-checksum writes to the bucket: it cannot run with --no-sign-request")
        head = item.head
        args: dict[str, Any] = {name: head[h] for h, name in _KEPT_HEADERS.items() if head.get(h)}
        if head.get("StorageClass") and head["StorageClass"] != "STANDARD":
            args["StorageClass"] = head["StorageClass"]
        copy_source = {"Bucket": bucket, "Key": item.key}
        if item.version_id:
            copy_source["VersionId"] = item.version_id
        try:
            client.copy_object(Bucket=bucket, Key=item.key, CopySource=copy_source, ChecksumAlgorithm="SHA256",
                               MetadataDirective="REPLACE", Metadata=head.get("Metadata", {}),
                               TaggingDirective="COPY", CopySourceIfMatch=item.etag or "*", **args)
            # Did the store keep it? Some (Ceph RGW 16, s3rver) accept the header and keep nothing.
            after = client.head_object(Bucket=bucket, Key=item.key, ChecksumMode="ENABLED")
        except Exception as exc:
            raise sources.translate(bucket, item.key)(exc) from None
        oid, _ = full_object_sha256(after)
        if oid is None:
            report.not_kept.append(item.url)
        else:
            report.added.append(item.url)
            report.refreshed += refresh_records(records, linked, bucket, item.key, oid, after)
        bar.advance(1, item.size)

    with Progress("adding checksums", len(todo), quiet=quiet) as bar, ThreadPoolExecutor(jobs) as pool:
        for _ in pool.map(one, todo):
            pass
    return report


def _known_records(cwd: str | os.PathLike[str] | None) -> tuple[Any, dict[tuple[str, str], list[LinkRecord]]]:
    """This clone's linked store (None outside a configured repository) and its records by (bucket, key)."""
    from lfs_s3_agent import wiring
    from lfs_s3_agent.errors import GitError

    try:
        linked = wiring.build(cwd=cwd, need_repo=True).linked_store()
    except (ConfigError, GitError):
        return None, {}
    by_place: dict[tuple[str, str], list[LinkRecord]] = {}
    for record in linked.local.all() if linked.local is not None else []:
        by_place.setdefault((record.bucket, record.key), []).append(record)
    return linked, by_place


def refresh_records(records: dict[tuple[str, str], list[LinkRecord]], linked: Any, bucket: str, key: str, oid: str,
                    head: Mapping[str, Any]) -> int:
    """Bring the records of an original that was copied onto itself up to date (its bytes did not change)."""
    if linked is None:
        return 0
    version = head.get("VersionId") if head.get("VersionId") not in (None, "null") else None
    count = 0
    for record in records.get((bucket, key), []):
        if record.oid == oid:
            linked.refresh(record.model_copy(update={"etag": head.get("ETag"), "version_id": version}))
            count += 1
    return count


# -- checkout ------------------------------------------------------------------------------------

@dataclass
class CheckoutReport:
    files: list[str] = field(default_factory=list)
    bytes_downloaded: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"files": self.files, "bytes_downloaded": self.bytes_downloaded}

    def render(self) -> list[str]:
        return [f"checked out {plural(len(self.files), 'file')}, {human_bytes(self.bytes_downloaded)} downloaded"]


def checkout(paths: list[str], *, cwd: str | os.PathLike[str] | None = None, quiet: bool = False) -> CheckoutReport:
    """Replace LFS pointer files under ``paths`` with their content, downloading what is missing."""
    from lfs_s3_agent import wiring

    wired = wiring.build(cwd=cwd, need_repo=True)
    repo = wired.repo
    dirs = wired.dirs
    assert repo is not None and dirs is not None
    if repo.toplevel is None:
        raise ConfigError("checkout needs a working tree (this is a bare repository)")
    store = wired.store()
    base = Path(cwd or os.getcwd())
    pointers: list[tuple[Path, Pointer]] = []
    for given in paths:
        root = (base / given).resolve()
        if not root.exists():
            raise LocalFileError(f"{given}: no such file or directory")
        if root != repo.toplevel.resolve() and repo.toplevel.resolve() not in root.parents:
            raise LocalFileError(f"{given}: outside the repository at {repo.toplevel}")
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and ".git" not in p.parts]
        for path in files:
            if path.stat().st_size <= MAX_POINTER_SIZE:
                pointer = Pointer.decode(path.read_bytes())
                if pointer is not None:
                    pointers.append((path, pointer))
    report = CheckoutReport()
    with Progress("checking out", len(pointers), quiet=quiet) as bar:
        for path, pointer in pointers:
            if not dirs.has(pointer.oid):
                oid, size = pointer.oid, pointer.size
                download_into_objects(
                    lambda sink, oid=oid, size=size: store.download(oid, size, sink,  # type: ignore[misc]
                                                                     ProgressReporter(size, lambda a, b: None)),
                    dirs, oid=oid, size=size, where=lambda oid=oid: store.describe(oid))  # type: ignore[misc]
                report.bytes_downloaded += pointer.size
            _copy_atomic(dirs.object_path(pointer.oid), path)
            report.files.append(str(path))
            bar.advance(1, pointer.size)
    refresh_index(repo.toplevel, [p for p, _ in pointers])
    return report


# -- link status / link update: drift between linked files and their originals ----------------------

@dataclass
class Drift:
    path: str
    oid: str
    size: int
    url: str
    state: str  #: "unchanged", "changed in place", "changed" or "gone"
    detail: str = ""
    new_oid: str | None = None  #: the original's oid now, when known (changed content)
    head: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "oid": self.oid, "size": self.size, "original": self.url, "state": self.state,
                "detail": self.detail, "new_oid": self.new_oid}


@dataclass
class LinkStatusReport:
    files: list[Drift] = field(default_factory=list)
    deep: bool = False
    updated: list[str] = field(default_factory=list)  #: with `link update`: what was done, per file
    update: bool = False

    @property
    def exit_status(self) -> int:
        if self.update:
            return 0 if all(d.state in ("unchanged", "changed in place", "changed") for d in self.files) else 1
        return 0 if all(d.state == "unchanged" for d in self.files) else 1

    def to_json(self) -> dict[str, Any]:
        return {"deep": self.deep, "files": [d.to_json() for d in self.files], "updated": self.updated}

    def render(self) -> list[str]:
        lines = [f"{d.state:<17} {d.path}  -> {d.url}" + (f"  ({d.detail})" if d.detail else "") for d in self.files]
        lines.extend(self.updated)
        counts: dict[str, int] = {}
        for d in self.files:
            counts[d.state] = counts.get(d.state, 0) + 1
        lines.append(f"{plural(len(self.files), 'linked file')}: " + (", ".join(f"{n} {s}" for s, n in
                                                                              sorted(counts.items())) or "none"))
        if not self.update and any(d.state != "unchanged" for d in self.files):
            lines.append("fix: `lfs-s3-agent link update` refreshes records (same content) and re-links changed "
                         "files (commit the new pointers)")
        return lines


def _linked_files(paths: list[str], cwd: str | os.PathLike[str] | None) -> tuple[Any, list[tuple[str, Pointer,
                                                                                              LinkRecord]]]:
    from lfs_s3_agent import reachable, wiring

    wired = wiring.build(cwd=cwd, need_repo=True)
    linked = wired.linked_store()
    repo = wired.repo
    assert repo is not None and repo.toplevel is not None
    base = Path(cwd or os.getcwd()).resolve()
    wanted = [str((base / p).resolve().relative_to(repo.toplevel.resolve())) for p in paths] or ["."]
    found = []
    for reached in reachable.scan(["HEAD^{tree}"], cwd).values() if reachable.has_commits("HEAD", cwd) else []:
        if not any(w == "." or reached.path == w or reached.path.startswith(w.rstrip("/") + "/") for w in wanted):
            continue
        record = linked.local_record(reached.oid) or linked.records.get(reached.oid)
        if record is not None:
            found.append((reached.path, reached.pointer, record))
    return linked, sorted(found, key=lambda f: f[0])


def link_status(paths: list[str], *, deep: bool = False, cwd: str | os.PathLike[str] | None = None,
                update: bool = False) -> LinkStatusReport:
    """How each linked file under ``paths`` (HEAD's tree) stands against its original; with ``update``, fix it."""
    linked, files = _linked_files(paths, cwd)
    report = LinkStatusReport(deep=deep or update, update=update)
    for path, pointer, record in files:
        drift = Drift(path, pointer.oid, pointer.size, record.describe(), "unchanged")
        report.files.append(drift)
        _, client = linked.sources.for_record(record, str(cwd) if cwd else None)
        try:  # the key as it is now: drift is about the dataset, not whether the pinned version still exists
            head = client.head_object(Bucket=record.bucket, Key=record.key, ChecksumMode="ENABLED")
        except AgentError as err:
            if err.code != Code.NOT_FOUND:
                raise
            drift.state, drift.detail = "gone", "no object at the key any more"
            continue
        drift.head = head
        version = head.get("VersionId") if head.get("VersionId") not in (None, "null") else None
        same_pin = version == record.version_id if record.version_id else head.get("ETag") == record.etag
        now_oid, _ = full_object_sha256(head)
        if int(head["ContentLength"]) != record.size or (now_oid is not None and now_oid != record.oid):
            drift.state, drift.detail, drift.new_oid = "changed", "new content", now_oid
        elif not same_pin:
            drift.state = "changed in place"
            drift.detail = "same size, another ETag or version" + ("" if deep or update else "; content not checked")
            if deep or update:
                with open(os.devnull, "wb") as sink:
                    digest = fetch(client, bucket=record.bucket, key=record.key, size=record.size, sink=sink,
                                   progress=ProgressReporter(record.size, lambda a, b: None),
                                   knobs=Knobs.of(linked.settings), etag=head.get("ETag"))
                if digest == record.oid:
                    drift.detail = "same content"
                else:
                    drift.state, drift.detail, drift.new_oid = "changed", "new content", digest
        if update and drift.state == "changed" and drift.new_oid is None:  # no checksum: hash it to re-link
            size = int(head["ContentLength"])
            with open(os.devnull, "wb") as sink:
                drift.new_oid = fetch(client, bucket=record.bucket, key=record.key, size=size, sink=sink,
                                      progress=ProgressReporter(size, lambda a, b: None),
                                      knobs=Knobs.of(linked.settings), etag=head.get("ETag"))
    if update:
        _update(report, linked, files, cwd)
    return report


def _update(report: LinkStatusReport, linked: Any, files: list[tuple[str, Pointer, LinkRecord]],
            cwd: str | os.PathLike[str] | None) -> None:
    records = {path: record for path, _, record in files}
    repo = gitrepo.repo_paths(cwd)
    assert repo.toplevel is not None
    for drift in report.files:
        record = records[drift.path]
        head = drift.head
        version = head.get("VersionId") if head.get("VersionId") not in (None, "null") else None
        if drift.state == "changed in place":
            stored = linked.refresh(record.model_copy(update={"etag": head.get("ETag"), "version_id": version}))
            report.updated.append(f"refreshed the link record of {drift.path}"
                                  + ("" if stored else " (here only: these credentials cannot write the store)"))
        elif drift.state == "changed" and drift.new_oid is not None:
            size = int(head["ContentLength"])
            new = record.model_copy(update={"oid": drift.new_oid, "size": size, "etag": head.get("ETag"),
                                            "version_id": version})
            if linked.local is not None:
                linked.local.put(new)
            _write_atomic(repo.toplevel / drift.path, Pointer(drift.new_oid, size).encode())
            report.updated.append(f"re-linked {drift.path} to the original's new content: commit the new pointer")
        elif drift.state == "changed":
            report.updated.append(f"{drift.path}: the original has new content and no SHA-256 checksum: run "
                                  "`lfs-s3-agent link --hash-missing` for it")
