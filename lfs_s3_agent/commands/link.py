"""The ``link``, ``add-checksum`` and ``checkout`` commands (Kart-style linked datasets).

``link`` turns objects that already live in S3 into LFS pointers without copying them
into the LFS store: the oid comes from S3's own full-object SHA-256 checksum (a
composite multipart checksum is refused, never recorded), or, with ``--hash-missing``,
from streaming the bytes once. Link records go to this clone's git dir; the push that
carries the pointers records them in the LFS store. ``add-checksum`` gives objects a
full-object SHA-256 in place; it is the only command that writes to a source bucket.
"""

from __future__ import annotations

import hashlib
import os
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
from lfs_s3_agent.errors import AgentError, Code, ConfigError, IntegrityError, LocalFileError
from lfs_s3_agent.lfsdirs import LfsDirs, download_into_objects
from lfs_s3_agent.linked import LocalLinks, SourceClients, local_links_dir
from lfs_s3_agent.links import LinkRecord, full_object_sha256
from lfs_s3_agent.pointer import MAX_POINTER_SIZE, Pointer
from lfs_s3_agent.progress import ProgressReporter
from lfs_s3_agent.s3.client import S3Client
from lfs_s3_agent.s3.errors import translate
from lfs_s3_agent.s3.retry import Attempts
from lfs_s3_agent.s3.transfer import Knobs, fetch, paginate, stream_download
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
    """Clients for source buckets, each with its own settings, made once."""

    def __init__(self, flags: Mapping[str, Any], store: settings.Settings, cwd: str | os.PathLike[str] | None,
                 jobs: int = 16) -> None:
        self.flags = flags
        self.knobs = Knobs.of(store)
        self.cwd = cwd
        self.clients = SourceClients(store, pool=max(10, jobs))
        self._sources: dict[str, SourceSettings] = {}

    def get(self, bucket: str) -> tuple[SourceSettings, S3Client]:
        if bucket not in self._sources:
            self._sources[bucket] = source_settings(bucket, flags=self.flags, cwd=self.cwd)
        source = self._sources[bucket]
        return source, self.clients.get(source)

    def translate(self, bucket: str, key: str | None = None) -> Callable[[BaseException], AgentError]:
        source, _ = self.get(bucket)

        def tr(exc: BaseException) -> AgentError:
            err = translate(exc, bucket=bucket, key=key, endpoint=source.endpoint_url)
            if err.code == Code.CREDENTIALS and not source.unsigned:
                return AgentError(err.message + "; for a public bucket, pass --no-sign-request", code=err.code)
            return err

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


def _remedies(missing: list[Source], patterns: list[str]) -> str:
    shown = "\n".join(f"  {s.url}: {s.why}" for s in missing[:20])
    more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
    quoted = " ".join(f'"{p}"' for p in patterns)
    return (f"{len(missing)} object(s) have no full-object SHA-256 checksum, so their oid cannot be read "
            f"from S3:\n{shown}{more}\nEither:\n"
            f"  lfs-s3-agent add-checksum {quoted}   # adds SHA-256 checksums in place (writes to the bucket)\n"
            f"or add --hash-missing to this command     # reads those objects once to hash them; writes nothing")


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


def link(patterns: list[str], to: str, *, checkout: bool = True, hash_missing: bool = False, force: bool = False,
         source_flags: Mapping[str, Any] | None = None, jobs: int = 16, cwd: str | os.PathLike[str] | None = None,
         quiet: bool = False) -> LinkReport:
    repo = gitrepo.repo_paths(cwd)
    if repo.toplevel is None:
        raise ConfigError("link needs a working tree (this is a bare repository)")
    toplevel = repo.toplevel.resolve()
    dest_dir = (Path(cwd or os.getcwd()) / to).resolve()
    if dest_dir != toplevel and toplevel not in dest_dir.parents:
        raise LinkError(f"--to {to} is outside the repository at {toplevel}")
    sources = _sources_for(source_flags or {}, cwd, jobs)
    items = expand(patterns, sources)
    head_all(items, sources, jobs, quiet=quiet)
    missing = [s for s in items if s.oid is None]
    if missing and not hash_missing:
        raise LinkError(_remedies(missing, patterns))

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

    storage = gitrepo.lfs_storage_dir(repo, _lfs_storage(cwd))
    report = LinkReport()
    if missing:
        report.hashed = len(missing)
        report.bytes_downloaded += _hash_missing(missing, sources, storage if checkout else None, jobs, quiet)

    links = LocalLinks(local_links_dir(repo.common_dir))
    for item in items:
        source, _ = sources.get(item.pattern.bucket)
        assert item.oid is not None
        links.put(LinkRecord(oid=item.oid, size=item.size, bucket=item.pattern.bucket, key=item.key,
                             version_id=item.version_id, etag=item.etag, region=source.region,
                             endpoint_url=source.endpoint_url, unsigned=source.unsigned))

    if checkout:
        report.bytes_downloaded += _fetch_objects([s for s in items if s not in missing], sources, storage, jobs,
                                                  quiet)
    for path, item in targets.items():
        assert item.oid is not None
        report.paths.append(str(path.relative_to(toplevel)))
        if path in unchanged:
            continue  # already this object's content: linked before
        path.parent.mkdir(parents=True, exist_ok=True)
        if checkout:
            _copy_atomic(object_path(storage, item.oid), path)
        else:
            _write_atomic(path, Pointer(item.oid, item.size).encode())
    report.linked = len(items)
    report.to = to
    report.bytes_referenced = sum(s.size for s in items)
    report.gitattributes = ensure_lfs_tracked(toplevel, dest_dir, list(targets), cwd=cwd)
    refresh_index(toplevel, list(targets))
    if not checkout:
        # Pointers without local bytes need our pre-push step. `install` puts it in place, but a clone
        # configured only by `install --global` has git-lfs's stock hook: put ours there now.
        from lfs_s3_agent.commands import prepush
        from lfs_s3_agent.commands.install import custom_hook_note

        hook, outcome = prepush.install_hook(cwd)
        if outcome == "custom":
            report.hook_note = custom_hook_note(hook)
    return report


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


class _HashSink:
    """A write-only sink that hashes and discards (bounded memory, nothing stored)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return len(data)


def _hash_stream(client: S3Client, item: Source, sources: Sources, version_id: str | None, etag: str | None) -> str:
    sink = _HashSink()
    try:
        digest = stream_download(client, bucket=item.pattern.bucket, key=item.key, size=item.size,
                                 sink=sink,  # type: ignore[arg-type]
                                 progress=ProgressReporter(item.size, lambda a, b: None),
                                 attempts=Attempts(sources.knobs.max_attempts),
                                 extra={"VersionId": version_id} if version_id else {}, etag=etag)
    except AgentError as err:
        raise sources.translate(item.pattern.bucket, item.key)(err) from None
    if sink.size != item.size:
        raise IntegrityError(f"{item.url}: read {sink.size} bytes, expected {item.size}")
    return digest


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

    @property
    def exit_status(self) -> int:
        return 1 if self.too_large else 0

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "already": self.already, "too_large": self.too_large, "dry_run": self.dry_run}

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
        except Exception as exc:
            raise sources.translate(bucket, item.key)(exc) from None
        report.added.append(item.url)
        bar.advance(1, item.size)

    with Progress("adding checksums", len(todo), quiet=quiet) as bar, ThreadPoolExecutor(jobs) as pool:
        for _ in pool.map(one, todo):
            pass
    return report


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
