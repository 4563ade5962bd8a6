"""Command-line interface: a table of commands, each a small function over the library.

``main`` parses, calls one command, prints its report (``emit``: ``render()`` lines, or
``to_json()`` with ``--json``) and maps errors to exit codes. ``serve`` is what git-lfs runs;
it builds only its own parser and imports nothing heavy before init. Every command has help
with an example, and lists only the settings it uses.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lfs_s3_agent import __version__, settings
from lfs_s3_agent.errors import AgentError, ConfigError, GitError, printable

log = logging.getLogger("lfs_s3_agent")

#: Which settings each kind of command uses (its --help lists only those).
LOCATION = ("bucket", "prefix", "region", "endpoint_url", "profile", "addressing_style", "checksums", "ca_bundle",
            "tls_verify", "max_attempts", "timeout")
DOWNLOADS = (*LOCATION, "multipart_threshold", "part_size", "concurrency", "public_url", "no_sign_request",
             "restore_days", "restore_tier")
UPLOADS = (*DOWNLOADS, "sse", "sse_kms_key_id", "storage_class")
ALL = tuple(spec.name for spec in settings.FIELDS)


# -- output ---------------------------------------------------------------------------------------

def emit(report: Any, as_json: bool) -> int:
    """Print a command's report (its lines, or its JSON) and return its exit status.

    A report's ``notes`` (warnings, what was skipped and why) go to stderr, after its lines.
    """
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.render():
            print(printable(line))
        sys.stdout.flush()
        for note in getattr(report, "notes", ()):
            print(printable(note), file=sys.stderr)
    return int(getattr(report, "exit_status", 0))


# -- shared flags ---------------------------------------------------------------------------------

def add_setting_flags(parser: argparse.ArgumentParser, names: Sequence[str] = ALL) -> None:
    group = parser.add_argument_group("settings (override env LFS_S3_*, git config and .lfs-s3-agent.toml)")
    for name in names:
        spec = settings.FIELDS_BY_NAME[name]
        kwargs: dict[str, Any] = {"dest": spec.name, "default": None, "help": spec.help}
        if spec.choices:
            kwargs["choices"] = spec.choices
            if set(spec.choices) == {"true", "false"}:
                kwargs.update(nargs="?", const="true")  # `--no-sign-request` alone means true
        else:
            kwargs["metavar"] = spec.name.upper()
        group.add_argument(spec.flag, **kwargs)


def setting_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {spec.name: getattr(args, spec.name) for spec in settings.FIELDS
            if getattr(args, spec.name, None) is not None}


def add_json(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def add_no_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="do not read back server-side copies the store returned no SHA-256 for (Ceph RGW, copies "
                             "over 5 GB): they are reported as unverified instead of costing a download each")


def add_placement_flags(parser: argparse.ArgumentParser, no_checkout_help: str) -> None:
    """How ``link`` and ``import`` place S3 objects in the work tree (their ``plan``/``place`` steps)."""
    parser.add_argument("--no-checkout", dest="checkout", action="store_false", help=no_checkout_help)
    parser.add_argument("--hash-missing", action="store_true",
                        help="read objects that have no full-object SHA-256 checksum once to hash them")
    parser.add_argument("--force", action="store_true", help="replace existing files that are not LFS pointers")


def add_source_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("source bucket access (else git config lfs-s3-source.<bucket>.*)")
    group.add_argument("--no-sign-request", dest="unsigned", action="store_true", default=None,
                       help="public bucket: send unsigned requests (also AWS_NO_SIGN_REQUEST=1)")
    group.add_argument("--source-region", dest="region", metavar="REGION")
    group.add_argument("--source-endpoint-url", dest="endpoint_url", metavar="URL")
    group.add_argument("--source-profile", dest="profile", metavar="PROFILE")
    group.add_argument("--request-payer", dest="request_payer", action="store_true", default=None,
                       help="requester-pays bucket: every request says the requester pays, so your account is "
                            "charged for requests and transfer (git config lfs-s3-source.<bucket>.request-payer true)")
    group.add_argument("--jobs", type=int, default=16, help="parallel requests (default 16)")
    add_json(parser)


def source_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {"region": args.region, "endpoint_url": args.endpoint_url, "profile": args.profile,
            "unsigned": args.unsigned, "request_payer": args.request_payer}


# -- the commands -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    name: str
    help: str
    description: str
    examples: tuple[str, ...]
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    #: what the arguments after ``--`` are (passed on to git, as ``args.passthrough``); None: not taken
    passthrough: str | None = None
    #: unknown options go to ``args.passthrough`` too (they are all git's: no positional to confuse)
    unknown_to_git: bool = False


def _serve_args(p: argparse.ArgumentParser) -> None:
    add_setting_flags(p)
    p.add_argument("--log-file", help="append logs to this file (default: stderr, shown by GIT_TRACE=1)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   help="default: info under GIT_TRACE, else warning (env LFS_S3_LOG_LEVEL)")
    # From the launcher (launcher.py), which reads the first lines itself.
    p.add_argument("--first-line", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--answered-init", help=argparse.SUPPRESS)
    # From the thin relay when it hands a session over mid-object: OID=BYTES already reported to git-lfs.
    p.add_argument("--progress-sent", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--stamp", help=argparse.SUPPRESS)
    p.add_argument("--stamp-sig", help=argparse.SUPPRESS)
    p.add_argument("--stamp-margin", type=float, default=2.0, help=argparse.SUPPRESS)


def run_serve(args: argparse.Namespace) -> int:
    started = time.time()  # before init is answered: see unreachable.UnreachableMark
    setup_logging(args.log_file, args.log_level)
    # The protocol owns the real stdout; anything else printed (by us or a library) goes to stderr.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    for signum in (signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal or ssh session closed
        signal.signal(signum, _on_signal)

    from lfs_s3_agent import agent, wiring

    validated_at = time.time()
    config_error: ConfigError | None = None
    wired: wiring.Wiring | None = None
    store: Any
    try:
        wired = wiring.build(setting_flags(args))
        wired.settings  # noqa: B018 - checks that a bucket is configured
        store = wired.store()
    except (ConfigError, GitError) as exc:
        config_error = exc if isinstance(exc, ConfigError) else ConfigError(exc.message)
        log.error("%s", config_error.message)
        store = wiring.UnconfiguredStore(config_error)
    dirs = wired.dirs if wired is not None else None
    tmp_dir = dirs.tmp if dirs is not None else None
    relay = None
    if wired is not None and config_error is None and tmp_dir is not None and wired.settings.shared_worker == "true":
        try:
            relay = _worker_relay(args, wired, tmp_dir)
        except (ImportError, AttributeError, OSError) as exc:  # no unix sockets or flock on this system
            log.info("no shared worker here (%s); transferring in this process", exc)
    unreachable = _unreachable_mark(wired, started) if wired is not None and config_error is None else None
    on_init = None
    if args.stamp and args.stamp_sig is not None and config_error is None:
        from lfs_s3_agent.launcher import write_stamp

        def on_init() -> None:  # the next agents' launchers answer init without starting Python
            from lfs_s3_agent import gitrepo

            if wired is None or wired.repo is None:
                return
            repo = wired.repo
            try:  # read after the validation began, so a file changed since is newer than the stamp
                files = gitrepo.config_files(repo.toplevel or repo.git_dir, repo.git_dir)
                if repo.toplevel is not None:
                    settings_file = repo.toplevel / settings.SETTINGS_FILE
                    files.append(str(settings_file))
                    if not settings_file.exists():  # read as committed at HEAD, if it is there: HEAD counts too
                        blob = gitrepo.committed_file("HEAD", settings.SETTINGS_FILE, cwd=repo.toplevel)
                        files += gitrepo.head_files(repo.toplevel, repo.git_dir, repo.common_dir,
                                                    committed=blob is not None)
            except (GitError, OSError) as exc:
                log.info("no stamp: cannot list the files the settings come from (%s)", exc)
                return
            worker = _stamped_worker(args, wired, tmp_dir) if relay is not None else None
            write_stamp(args.stamp, args.stamp_sig, validated_at, worker, args.stamp_margin, files)

    first_lines = tuple(line.encode("utf-8", "surrogateescape") for line in args.first_line if line)
    try:
        return agent.serve(sys.stdin.buffer, protocol_out, store, tmp_dir=tmp_dir, config_error=config_error,
                           delegate=relay, unreachable=unreachable, first_lines=first_lines, on_init=on_init,
                           answered_init=args.answered_init.encode() if args.answered_init else None,
                           progress_sent=_progress_sent(args.progress_sent))
    except BrokenPipeError:
        return 0  # git-lfs went away; nothing left to tell it
    finally:
        if relay is not None:
            relay.close()
        if os.environ.get("LFS_S3_STATS_FILE"):
            from lfs_s3_agent.procstats import write_stats

            write_stats(os.environ["LFS_S3_STATS_FILE"], store.requests)


def _progress_sent(values: list[str]) -> dict[str, int]:
    """``--progress-sent OID=BYTES`` values as a dict; a malformed one (only our thin relay writes them) is
    skipped: it can only cost the progress bar a step back."""
    sent: dict[str, int] = {}
    for value in values:
        oid, eq, count = value.rpartition("=")
        if eq and oid and count.isascii() and count.isdigit() and len(count) < 20:
            sent[oid] = int(count)
        else:
            log.debug("ignoring --progress-sent %r", value)
    return sent


def _shared_worker_args(args: argparse.Namespace) -> list[str]:
    worker_args = [arg for spec in settings.FIELDS if getattr(args, spec.name, None) is not None
                   for arg in (spec.flag, str(getattr(args, spec.name)))]
    # Only an explicit flag: the worker reads LFS_S3_LOG_LEVEL from its own environment, and a worker the
    # launcher starts in another environment than the stamp's (it adopts that environment's key) must log
    # at that environment's level, not the one the stamp was written under.
    if args.log_level:
        worker_args += ["--log-level", args.log_level]
    return worker_args


def _unreachable_mark(wired: Any, started: float) -> Any:
    """The mark this repository's agents share when the endpoint cannot be reached (``unreachable``)."""
    from lfs_s3_agent.unreachable import UnreachableMark

    if wired.repo is None:
        return None
    s = wired.settings
    return UnreachableMark(wired.repo.common_dir / "lfs-s3-agent", s.endpoint_url or f"aws:{s.region or 'default'}",
                           started=started)


def _stamped_worker(args: argparse.Namespace, wired: Any, tmp_dir: Any) -> Any:
    """What a stamp records of this agent's shared worker (``launcher.StampedWorker``); None if it has none."""
    import shlex

    from lfs_s3_agent import rendezvous
    from lfs_s3_agent.launcher import StampedWorker

    try:
        key = rendezvous.key_for(wired.resolved)
        socket = str(rendezvous.socket_path(rendezvous.runtime_dir(), key))
    except (rendezvous.RendezvousError, OSError):
        return None
    mark = _unreachable_mark(wired, 0.0)
    return StampedWorker(
        socket=socket, command=shlex.join(["worker", "run", "--key", key, *_shared_worker_args(args)]),
        limit=int(wired.settings.multipart_threshold), config=rendezvous.config_digest_for(wired.resolved),
        tmp_dir=str(tmp_dir), mark=mark.path if mark is not None else "",
        package=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _worker_relay(args: argparse.Namespace, wired: Any, tmp_dir: Any) -> Any:
    """The relay to this configuration's shared worker.

    Nothing of it runs before init: the key, the rendezvous imports and the connection wait for
    the first small object (git-lfs waits for each agent's init reply before starting the next).
    """
    from lfs_s3_agent.relay import WorkerRelay

    worker_args = _shared_worker_args(args)
    cwd = os.getcwd()

    def connect() -> tuple[Any, str]:
        from lfs_s3_agent import rendezvous

        key = rendezvous.key_for(wired.resolved)
        if args.answered_init and wired.repo is not None:
            # The launcher answered init from a stamp whose worker may be another one (the environment
            # the key hashes, such as AWS_PROFILE, changed since it was written): its launchers would
            # start that worker in vain at every command. Point the stamp at ours.
            from lfs_s3_agent.launcher import STAMP_NAME, restamp_worker

            restamp_worker(wired.repo.git_dir / STAMP_NAME, _stamped_worker(args, wired, tmp_dir))
        return rendezvous.connect(key, worker_args, cwd=cwd), key

    return WorkerRelay(connect, max_size=wired.settings.multipart_threshold, tmp_dir=tmp_dir)


def _install_args(p: argparse.ArgumentParser) -> None:
    add_setting_flags(p)
    p.add_argument("--save", action="store_true",
                   help=f"write the settings to {settings.SETTINGS_FILE} (commit it) instead of git config, and "
                        "remove local git config keys that would override it")
    p.add_argument("--remote", metavar="NAME",
                   help="use the agent for this remote's LFS URL only; other remotes keep their host's LFS")
    p.add_argument("--global", dest="global_", action="store_true",
                   help=f"write to ~/.gitconfig, for remotes under each --url: a plain `git clone` of a repository "
                        f"that commits {settings.SETTINGS_FILE} then needs no step")
    p.add_argument("--url", dest="urls", action="append", default=[], metavar="URL_PREFIX",
                   help="with --global: a remote URL or prefix (a host, an organisation, one repository), as you "
                        "would clone it; repeatable")
    add_json(p, "what was written")


def run_install(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.install import install, install_global

    if args.global_:
        if setting_flags(args) or args.save or args.remote:
            raise ConfigError(f"--global takes only --url: settings come from each repository's committed "
                              f"{settings.SETTINGS_FILE} (or per clone: `lfs-s3-agent install --bucket NAME` in it)")
        return emit(install_global(args.urls), args.json)
    if args.urls:
        raise ConfigError("--url goes with --global; for one remote of this repository use --remote NAME")
    return emit(install(setting_flags(args), save=args.save, remote=args.remote), args.json)


def _uninstall_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keep-settings", action="store_true", help="keep the lfs-s3-agent.* settings")
    p.add_argument("--global", dest="global_", action="store_true", help="remove what `install --global` wrote")
    p.add_argument("--url", dest="urls", action="append", default=[], metavar="URL_PREFIX",
                   help="with --global: only these URLs (default: every one)")
    add_json(p, "what was removed")


def run_uninstall(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.install import uninstall, uninstall_global

    if args.global_:
        return emit(uninstall_global(args.urls), args.json)
    if args.urls:
        raise ConfigError("--url goes with --global")
    return emit(uninstall(keep_settings=args.keep_settings), args.json)


def _clone_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", help="the git remote to clone")
    p.add_argument("directory", nargs="?", help="where to clone (default: like git clone)")
    p.add_argument("--save", action="store_true", help="as for install")
    add_setting_flags(p)
    add_json(p, "what was set up")


def run_clone(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.install import clone

    _, report = clone(args.url, args.directory, setting_flags(args), save=args.save, git_args=args.passthrough)
    return emit(report, args.json)


def _link_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="+", metavar="S3_PATTERN",
                   help="s3://bucket/key, prefix/ or glob; or `status [PATH...]` / `update [PATH...]`")
    p.add_argument("--to", help="directory (in this repository) for the pointer files (required to link)")
    p.add_argument("--deep", action="store_true", help="with status: hash originals that changed in place")
    add_placement_flags(p, "write pointers only; download no bytes (fetch later with git lfs pull or checkout)")
    add_source_flags(p)


def run_link(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.link import link, link_status

    if args.patterns[0] in ("status", "update"):
        report = link_status(args.patterns[1:], deep=args.deep, update=args.patterns[0] == "update")
        return emit(report, args.json)
    if not args.to:
        raise ConfigError("link needs --to DIR (the directory for the pointer files)")

    return emit(link(args.patterns, args.to, checkout=args.checkout, hash_missing=args.hash_missing,
                     force=args.force, source_flags=source_flags(args), jobs=args.jobs, quiet=args.json), args.json)


def _import_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="+", metavar="S3_PATTERN", help="s3://bucket/key, prefix/ or glob, as for link")
    p.add_argument("--to", required=True, help="directory (in this repository) for the files")
    add_placement_flags(p, "write pointers only; with server-side copies no object bytes pass through this machine")
    add_no_verify(p)
    add_source_flags(p)


def run_import(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.imports import import_objects

    return emit(import_objects(args.patterns, args.to, checkout=args.checkout, hash_missing=args.hash_missing,
                               force=args.force, source_flags=source_flags(args), jobs=args.jobs, verify=args.verify,
                               quiet=args.json), args.json)


def _add_checksum_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("patterns", nargs="+", metavar="S3_PATTERN")
    p.add_argument("--dry-run", action="store_true", help="list what would change; write nothing")
    add_source_flags(p)


def run_add_checksum(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.link import add_checksum

    return emit(add_checksum(args.patterns, dry_run=args.dry_run, source_flags=source_flags(args), jobs=args.jobs,
                             quiet=args.json), args.json)


def _checkout_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH")
    add_json(p, "the files checked out")


def run_checkout(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.link import checkout

    return emit(checkout(args.paths, quiet=args.json), args.json)


def _pre_push_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("remote")
    p.add_argument("url")


def run_pre_push(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.prepush import pre_push

    return pre_push(args.remote, args.url, sys.stdin.buffer.read())


def _verify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("revs", nargs="*", metavar="REV", help="revisions (default: HEAD)")
    p.add_argument("--all", dest="all_refs", action="store_true", help="every ref (branches, tags, remotes, stash)")
    p.add_argument("--deep", action="store_true", help="download and re-hash every object (slow; reads every byte)")
    add_json(p)
    add_setting_flags(p, DOWNLOADS)


def run_verify(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.verify import verify

    return emit(verify(args.revs, all_refs=args.all_refs, deep=args.deep, flags=setting_flags(args),
                       quiet=args.json), args.json)


def _restore_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", metavar="REV|PATH",
                   help="revisions whose checkout needs the objects (default: HEAD), then paths or globs")
    p.add_argument("--all", dest="all_refs", action="store_true", help="every object any ref reaches")
    p.add_argument("--status", action="store_true", help="only show each archived object's restore state")
    add_json(p)
    add_setting_flags(p, DOWNLOADS)


def run_restore(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.restore import restore

    return emit(restore(args.targets, all_refs=args.all_refs, status_only=args.status, flags=setting_flags(args),
                        quiet=args.json), args.json)


def _gc_args(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="list what would be deleted (the default)")
    mode.add_argument("--force", action="store_true", help="really delete")
    p.add_argument("--grace", default="7d", help="keep objects newer than this (default 7d; s/m/h/d/w); at least "
                   "1h unless --allow-short-grace")
    p.add_argument("--allow-short-grace", action="store_true",
                   help="allow --grace under 1h (only when no push can be under way: its new objects would go)")
    p.add_argument("--max-requests", type=int, metavar="N", help="stop before making more than N S3 requests")
    p.add_argument("--keep-from", metavar="FILE", help="also keep these oids (one per line, # comments; - for stdin)")
    add_json(p)
    add_setting_flags(p, LOCATION)


def run_gc(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.gc import gc

    return emit(gc(setting_flags(args), force=args.force, grace=args.grace, max_requests=args.max_requests,
                   keep_from=args.keep_from, quiet=args.json, allow_short_grace=args.allow_short_grace), args.json)


def _prune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true", help="check and list; delete nothing")
    p.add_argument("--remote", metavar="NAME", help="the remote named in the push command it suggests "
                   "(default: lfs.remote.default, remote.pushDefault or origin)")
    add_json(p)
    add_setting_flags(p, LOCATION)


def run_prune(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.prune import prune

    return emit(prune(args.passthrough, dry_run=args.dry_run, flags=setting_flags(args), remote=args.remote),
                args.json)


def _ls_args(p: argparse.ArgumentParser) -> None:
    add_json(p)
    add_setting_flags(p, LOCATION)


def run_ls(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.inventory import inventory

    return emit(inventory(setting_flags(args), quiet=args.json), args.json)


def run_du(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.inventory import du

    return emit(du(setting_flags(args), quiet=args.json), args.json)


def _copy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("destination", metavar="s3://BUCKET/PREFIX")
    p.add_argument("--dry-run", action="store_true", help="say what would be copied; write nothing")
    p.add_argument("--jobs", type=int, default=8, help="objects copied in parallel (default 8)")
    p.add_argument("--dest-profile", metavar="PROFILE", help="AWS profile for the destination")
    p.add_argument("--dest-region", metavar="REGION", help="the destination bucket's region")
    p.add_argument("--dest-endpoint-url", metavar="URL",
                   help="the destination's endpoint ('aws' for AWS itself when the source has a custom one)")
    add_no_verify(p)
    add_json(p)
    add_setting_flags(p, UPLOADS)


def run_copy(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.copy import copy

    def echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    plain = not args.json and not sys.stderr.isatty()  # one line per object when there is no progress bar
    report = copy(args.destination, flags=setting_flags(args), dry_run=args.dry_run, jobs=args.jobs,
                  dest_profile=args.dest_profile, dest_region=args.dest_region,
                  dest_endpoint_url=args.dest_endpoint_url, quiet=args.json, echo=echo if plain else None,
                  verify=args.verify)
    return emit(report, args.json)


def _doctor_args(p: argparse.ArgumentParser) -> None:
    add_json(p)
    add_setting_flags(p, UPLOADS)


def run_doctor(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.doctor import doctor

    return emit(doctor(setting_flags(args)), args.json)


def _worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("status", "stop", "run"),
                   help="status, stop, or run (what an agent starts; not for humans)")
    p.add_argument("--all", action="store_true", help="every worker of this user, not only this repository's")
    add_json(p, "the workers")
    p.add_argument("--key", help=argparse.SUPPRESS)
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help=argparse.SUPPRESS)
    add_setting_flags(p)


def run_worker(args: argparse.Namespace) -> int:
    if args.action == "run":
        if not args.key:
            raise ConfigError("worker run is started by the agent with --key; use status or stop")
        from lfs_s3_agent import worker

        ready = worker.main_stdio()
        setup_logging(None, args.log_level)
        return worker.run(args.key, setting_flags(args), ready=ready)
    from lfs_s3_agent.commands.worker import workers

    return emit(workers(args.action, everyone=args.all), args.json)


def _config_args(p: argparse.ArgumentParser) -> None:
    add_setting_flags(p)
    add_json(p, "every setting")


def run_config(args: argparse.Namespace) -> int:
    from lfs_s3_agent.commands.install import config

    return emit(config(setting_flags(args)), args.json)


COMMANDS: tuple[Command, ...] = (
    Command("serve", "the transfer agent git-lfs runs (not for humans)",
            "Speak git-lfs's custom transfer protocol on stdin/stdout. git-lfs starts this; `install` configures it.",
            ("git config lfs.customtransfer.lfs-s3-agent.args '-P -m lfs_s3_agent serve'   # what install configures",),
            _serve_args, run_serve),
    Command("install", "configure this repository (or, with --global, your remotes) to use the agent",
            "Write the git config git-lfs needs to use lfs-s3-agent as its standalone transfer agent, and the given "
            "settings. --remote NAME: for that remote only. --global --url PREFIX: in ~/.gitconfig, for every "
            "repository under PREFIX that commits .lfs-s3-agent.toml (plain git clone/push/pull then just work). "
            "Idempotent.",
            ("lfs-s3-agent install --global --url https://github.com/my-org   # once per machine",
             "lfs-s3-agent install --bucket my-bucket --prefix my-repo --save",
             "lfs-s3-agent install --remote s3 --bucket my-bucket --prefix my-repo   # origin keeps its LFS",
             "lfs-s3-agent install          # in a clone with .lfs-s3-agent.toml"), _install_args, run_install),
    Command("uninstall", "remove what install wrote",
            "Remove the git config that install wrote (the committed settings file stays); --global: what "
            "install --global wrote to ~/.gitconfig.",
            ("lfs-s3-agent uninstall --keep-settings", "lfs-s3-agent uninstall --global --url https://github.com/my-org"),
            _uninstall_args, run_uninstall),
    Command("clone", "clone, install and pull in one step",
            "GIT_LFS_SKIP_SMUDGE=1 git clone [GIT_CLONE_OPTIONS] URL [DIR], then install, then git lfs pull. "
            "Options after -- go to git clone.",
            ("lfs-s3-agent clone git@example.com:team/art.git",
             "lfs-s3-agent clone git@example.com:team/art.git art -- --branch dev --depth 1"), _clone_args, run_clone,
            passthrough="GIT_CLONE_OPTIONS"),
    Command("link", "version files that already live in S3, without copying",
            "Turn S3 objects into LFS pointers under --to. The oid is read from S3's full-object SHA-256 checksum; "
            "the bytes stay in the original and every clone fetches them from there. Patterns: * ? [..] ** {a,b}, "
            "plain keys, prefixes/.",
            ('lfs-s3-agent link "s3://survey/tiles/*.laz" --to data/tiles',
             'lfs-s3-agent link "s3://survey/tiles/**/*.{laz,tif}" --to data --no-checkout',
             "lfs-s3-agent link s3://public-data/dem/ --to dem --no-sign-request",
             "lfs-s3-agent link status data --deep     # which linked files changed in their originals",
             "lfs-s3-agent link update data            # refresh records, re-link changed files"),
            _link_args, run_link),
    Command("import", "copy S3 objects into the LFS store as ordinary LFS files",
            "Copy the matched S3 objects into the LFS store under their oids and write their files under --to, as "
            "link does, but with no link record: the dataset no longer depends on the originals. The oid comes from "
            "S3's full-object SHA-256 checksum (or --hash-missing). Copies are server-side (CopyObject, "
            "UploadPartCopy above 5 GB) when the originals are on the store's endpoint and its credentials may read "
            "them, streamed through this machine otherwise; each copy is checked against its oid.",
            ('lfs-s3-agent import "s3://survey/tiles/*.laz" --to data/tiles',
             'lfs-s3-agent import "s3://open-data/dem/**/*.tif" --to dem --no-checkout --request-payer',
             "lfs-s3-agent import s3://exports/2024/ --to exports --hash-missing --json"), _import_args, run_import),
    Command("add-checksum", "give S3 objects a full-object SHA-256 in place",
            "Copy each matched object onto itself with a SHA-256 checksum (metadata, content type and storage class "
            "kept; ACLs are NOT kept). Objects over 5 GB cannot be copied in place: use link --hash-missing for "
            "those.", ('lfs-s3-agent add-checksum "s3://survey/tiles/*.laz" --dry-run',), _add_checksum_args,
            run_add_checksum),
    Command("checkout", "download and check out LFS files (linked too)",
            "Replace LFS pointer files under the given paths with their content.",
            ("lfs-s3-agent checkout data/tiles",), _checkout_args, run_checkout),
    Command("pre-push", "the pre-push hook install writes (not for humans)",
            "Run git-lfs's pre-push; linked objects never downloaded here are let through after their links are "
            "recorded in the store.", ('exec lfs-s3-agent pre-push "$@"   # in .git/hooks/pre-push',),
            _pre_push_args, run_pre_push),
    Command("verify", "check that every LFS object of some revisions is stored",
            "Check that every LFS object reachable from the given revisions (default HEAD; --all: every ref) is in "
            "the store with the right size; linked objects: that the original still exists unchanged. --deep "
            "re-reads and re-hashes every byte. Lists missing and corrupt objects with their paths and the commits "
            "that added them; exit status 1 when there is any.",
            ("lfs-s3-agent verify                 # what HEAD needs",
             "lfs-s3-agent verify --all --deep    # every ref, every byte re-hashed",
             "lfs-s3-agent verify v1.0 main --json"), _verify_args, run_verify),
    Command("restore", "request restores of archived objects (Glacier, Deep Archive) a checkout needs",
            "For every LFS object the revisions check out (default HEAD; --all: every ref), under the given paths, "
            "request a restore of those in an archive storage class (GLACIER, DEEP_ARCHIVE, Intelligent-Tiering's "
            "archive tiers; linked originals too) for --restore-days at --restore-tier, and show each one's state. "
            "A restore under way or done is never requested again. --status only shows. Exit status 1 when an "
            "object is missing or could not be checked.",
            ("lfs-s3-agent restore                        # what HEAD's checkout needs",
             "lfs-s3-agent restore v2.0 assets/ --restore-tier Bulk",
             "lfs-s3-agent restore --status --json"), _restore_args, run_restore),
    Command("gc", "delete store objects that no ref references",
            "Delete stored objects and link records under the prefix that no ref of this repository references "
            "(branches, tags, remote-tracking refs, stash, reflogs), older than the grace period, and abort our "
            "stale unfinished multipart uploads. A dry run unless --force. Keys that are not in lfs-s3-agent's "
            "layout are never touched. Exit status 3 when --max-requests stopped it (run again to continue).",
            ("lfs-s3-agent gc                       # dry run: what would be deleted",
             "lfs-s3-agent gc --force --grace 30d --max-requests 500",
             "git -C ../fork lfs ls-files --all --long > keep.txt",
             "lfs-s3-agent gc --force --keep-from keep.txt   # a prefix shared by two repos"), _gc_args, run_gc),
    Command("prune", "git lfs prune, deleting only local objects the store holds",
            "Ask `git lfs prune --dry-run` (with the git lfs prune options given) which local objects it would "
            "delete, check each against the store (one listing for many), and delete them only if every one is "
            "there; otherwise delete nothing and list the missing ones with the command that pushes them. "
            "`git lfs prune --verify-remote` cannot verify anything with a standalone agent. Exit status 1 when "
            "an object is missing.",
            ("lfs-s3-agent prune --dry-run", "lfs-s3-agent prune --recent    # git lfs prune's own options pass on"),
            _prune_args, run_prune, passthrough="git lfs prune options", unknown_to_git=True),
    Command("ls", "list the store's objects",
            "List every object in the store: date, size, stored or linked, whether HEAD references it (and at which "
            "path); keys that are not ours are listed apart.",
            ("lfs-s3-agent ls", "lfs-s3-agent ls --json | jq '.objects[] | select(.in_head == false)'"),
            _ls_args, run_ls),
    Command("du", "totals: stored and linked bytes, referenced by HEAD or not",
            "Count the store's objects and bytes: stored, linked (and the bytes HEAD's linked objects keep in their "
            "originals), referenced by HEAD or not.", ("lfs-s3-agent du --json",), _ls_args, run_du),
    Command("copy", "copy the store to another bucket/prefix/region/account",
            "Copy every object and link record of the store to s3://BUCKET/PREFIX: server-side (CopyObject; "
            "UploadPartCopy above 5 GB) when the destination's credentials can read the source, streamed through "
            "this machine otherwise. Restartable: objects already there with the same size and checksum are "
            "skipped. The destination defaults to the source's profile, region and endpoint.",
            ("lfs-s3-agent copy s3://new-bucket/my-repo --dry-run",
             "lfs-s3-agent copy s3://backup/my-repo --dest-region eu-west-1 --jobs 16",
             "lfs-s3-agent copy s3://archive/repo --dest-profile other-account --dest-endpoint-url aws"),
            _copy_args, run_copy),
    Command("doctor", "check the setup end to end and say how to fix it",
            "Check, in order: git and git-lfs versions, this repository's install state, the settings and where "
            "each comes from, the credentials' identity (never the secret), the bucket and its region, "
            "writing/reading/deleting a probe object under the prefix, and whether the endpoint accepts boto3's "
            "default checksums. Exit status 1 if any check failed.",
            ("lfs-s3-agent doctor", "lfs-s3-agent doctor --json"), _doctor_args, run_doctor),
    Command("worker", "show or stop the shared transfer workers",
            "The agents git-lfs starts hand small objects to one warm worker process per repository and "
            "configuration (setting shared_worker); it exits by itself after worker_idle seconds without work. "
            "status lists this user's workers; stop stops this repository's (--all: every one) after their "
            "transfers.", ("lfs-s3-agent worker status", "lfs-s3-agent worker stop --all"), _worker_args, run_worker),
    Command("config", "show the resolved settings and their sources",
            "Show each setting, its value and where it came from.", ("lfs-s3-agent config --json",),
            _config_args, run_config),
)


def _add_command(sub: Any, command: Command) -> None:
    examples = "\n".join(f"  {e}" for e in command.examples)
    p = sub.add_parser(command.name, formatter_class=argparse.RawDescriptionHelpFormatter, help=command.help,
                       description=command.description,
                       epilog=("example:\n" if len(command.examples) == 1 else "examples:\n") + examples)
    command.arguments(p)
    p.set_defaults(func=command.run)


def build_parser(names: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lfs-s3-agent", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A Git LFS custom transfer agent that keeps LFS objects in S3.",
        epilog="example:\n  lfs-s3-agent install --bucket my-bucket --prefix my-repo\n\n"
               "Run `lfs-s3-agent COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"lfs-s3-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        if names is None or command.name in names:
            _add_command(sub, command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # pydantic loads the plugins every installed distribution declares (entry points) into each process
    # that defines a model: a scan of all installed packages' metadata on the path to a cold worker's
    # first byte (15-20 ms measured in the test venv), and foreign code in a process holding the user's
    # credentials. None is wanted here; an explicit setting is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # git-lfs starts 8 agents in a row, each waits for this: serve builds only its own parser.
    parser = build_parser(["serve"]) if argv[:1] == ["serve"] else build_parser()
    command = next((c for c in COMMANDS if argv[:1] == [c.name]), None)
    passthrough: list[str] = []
    if command is not None and command.passthrough and "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1:]
    args, unknown = parser.parse_known_args(argv)
    if unknown and command is not None and command.unknown_to_git:
        passthrough, unknown = [*unknown, *passthrough], []
    if unknown:
        hint = (f"; {command.passthrough} go after --: lfs-s3-agent {command.name} ... -- {' '.join(unknown)}"
                if command is not None and command.passthrough else "")
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    args.passthrough = passthrough
    try:
        return int(args.func(args))
    except AgentError as exc:
        print(printable(f"lfs-s3-agent: error: {exc.message}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# -- logging and signals -----------------------------------------------------------------------------

def setup_logging(log_file: str | None, level: str | None) -> None:
    trace = os.environ.get("GIT_TRACE", "") not in ("", "0", "false")
    level = level or os.environ.get("LFS_S3_LOG_LEVEL") or ("info" if trace else "warning")
    log_file = log_file or os.environ.get("LFS_S3_LOG_FILE")
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter(f"lfs-s3-agent[{os.getpid()}] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.WARNING))
    logging.getLogger("botocore").setLevel(logging.WARNING)  # its debug output could leak request details


class SafeFormatter(logging.Formatter):
    """Log lines with control characters escaped: messages carry keys and errors the store controls."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def _on_signal(signum: int, _frame: object) -> None:
    # Unwind through the finally blocks that remove temporary files.
    raise SystemExit(128 + signum)
