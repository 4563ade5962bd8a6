"""Command-line interface: parse, call the library, map errors to messages and exit codes.

``serve`` is what git-lfs runs; it imports nothing heavy before init. The other
commands (``install``, ``uninstall``, ``clone``, ``config``) are thin wrappers over
``install`` and ``settings``. Every command has help with an example.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from lfs_s3_agent import __version__, settings
from lfs_s3_agent.errors import AgentError, ConfigError, GitError

log = logging.getLogger("lfs_s3_agent")


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (override env LFS_S3_*, git config and .lfs-s3-agent.toml)")
    for spec in settings.FIELDS:
        kwargs: dict[str, Any] = {"dest": spec.name, "default": None, "help": spec.help}
        if spec.choices:
            kwargs["choices"] = spec.choices
        else:
            kwargs["metavar"] = spec.name.upper()
        group.add_argument(spec.flag, **kwargs)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    return {spec.name: getattr(args, spec.name) for spec in settings.FIELDS
            if getattr(args, spec.name, None) is not None}


def _add_serve(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser("serve", formatter_class=fmt, help="the transfer agent git-lfs runs (not for humans)",
                       description="Speak git-lfs's custom transfer protocol on stdin/stdout. "
                                   "git-lfs starts this; `install` configures it.",
                       epilog="example (what install configures):\n"
                              "  git config lfs.customtransfer.lfs-s3-agent.args '-m lfs_s3_agent serve'")
    _add_setting_flags(p)
    p.add_argument("--log-file", help="append logs to this file (default: stderr, shown by GIT_TRACE=1)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   help="default: info under GIT_TRACE, else warning (env LFS_S3_LOG_LEVEL)")
    p.set_defaults(func=cmd_serve)


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="lfs-s3-agent", formatter_class=fmt,
        description="A Git LFS custom transfer agent that keeps LFS objects in S3.",
        epilog="example:\n  lfs-s3-agent install --bucket my-bucket --prefix my-repo\n\n"
               "Run `lfs-s3-agent COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"lfs-s3-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _add_serve(sub, fmt)

    p = sub.add_parser("install", formatter_class=fmt, help="configure this repository to use the agent",
                       description="Write the git config git-lfs needs to use lfs-s3-agent as its "
                                   "standalone transfer agent, and the given settings. Idempotent.",
                       epilog="examples:\n"
                              "  lfs-s3-agent install --bucket my-bucket --prefix my-repo --save\n"
                              "  lfs-s3-agent install          # in a clone with .lfs-s3-agent.toml")
    _add_setting_flags(p)
    p.add_argument("--save", action="store_true",
                   help=f"write the settings to {settings.SETTINGS_FILE} (commit it) instead of git config")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("uninstall", formatter_class=fmt, help="remove what install wrote",
                       description="Remove the git config that install wrote (the committed settings "
                                   "file stays).",
                       epilog="example:\n  lfs-s3-agent uninstall --keep-settings")
    p.add_argument("--keep-settings", action="store_true", help="keep the lfs-s3-agent.* settings")
    p.add_argument("--json", action="store_true", help="print what was removed as JSON")
    p.set_defaults(func=cmd_uninstall)

    p = sub.add_parser("clone", formatter_class=fmt, help="clone, install and pull in one step",
                       description="GIT_LFS_SKIP_SMUDGE=1 git clone URL [DIR], then install, then "
                                   "git lfs pull.",
                       epilog="example:\n  lfs-s3-agent clone git@example.com:team/art.git")
    p.add_argument("url", help="the git remote to clone")
    p.add_argument("directory", nargs="?", help="where to clone (default: like git clone)")
    p.add_argument("--save", action="store_true", help="as for install")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_clone)

    p = sub.add_parser("link", formatter_class=fmt, help="version files that already live in S3, without copying",
                       description="Turn S3 objects into LFS pointers under --to. The oid is read from S3's "
                                   "full-object SHA-256 checksum; the bytes stay in the original and every clone "
                                   "fetches them from there. Patterns: * ? [..] ** {a,b}, plain keys, prefixes/.",
                       epilog="examples:\n"
                              "  lfs-s3-agent link \"s3://survey/tiles/*.laz\" --to data/tiles\n"
                              "  lfs-s3-agent link \"s3://survey/tiles/**/*.{laz,tif}\" --to data --no-checkout\n"
                              "  lfs-s3-agent link s3://public-data/dem/ --to dem --no-sign-request")
    p.add_argument("patterns", nargs="+", metavar="S3_PATTERN", help="s3://bucket/key, prefix/ or glob")
    p.add_argument("--to", required=True, help="directory (in this repository) for the pointer files")
    p.add_argument("--no-checkout", dest="checkout", action="store_false",
                   help="write pointers only; download no bytes (fetch later with git lfs pull or checkout)")
    p.add_argument("--hash-missing", action="store_true",
                   help="read objects that have no full-object SHA-256 checksum once to hash them")
    p.add_argument("--force", action="store_true", help="replace existing files that are not LFS pointers")
    _add_source_flags(p)
    p.set_defaults(func=cmd_link)

    p = sub.add_parser("add-checksum", formatter_class=fmt, help="give S3 objects a full-object SHA-256 in place",
                       description="Copy each matched object onto itself with a SHA-256 checksum (metadata, "
                                   "content type and storage class kept; ACLs are NOT kept). Objects over 5 GB "
                                   "cannot be copied in place: use link --hash-missing for those.",
                       epilog="example:\n  lfs-s3-agent add-checksum \"s3://survey/tiles/*.laz\" --dry-run")
    p.add_argument("patterns", nargs="+", metavar="S3_PATTERN")
    p.add_argument("--dry-run", action="store_true", help="list what would change; write nothing")
    _add_source_flags(p)
    p.set_defaults(func=cmd_add_checksum)

    p = sub.add_parser("checkout", formatter_class=fmt, help="download and check out LFS files (linked too)",
                       description="Replace LFS pointer files under the given paths with their content.",
                       epilog="example:\n  lfs-s3-agent checkout data/tiles")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print the files checked out as JSON")
    p.set_defaults(func=cmd_checkout)

    p = sub.add_parser("pre-push", formatter_class=fmt, help="the pre-push hook install writes (not for humans)",
                       description="Run git-lfs's pre-push; linked objects never downloaded here are let "
                                   "through after their links are recorded in the store.",
                       epilog="example (in .git/hooks/pre-push):\n  exec lfs-s3-agent pre-push \"$@\"")
    p.add_argument("remote")
    p.add_argument("url")
    p.set_defaults(func=cmd_pre_push)

    p = sub.add_parser("verify", formatter_class=fmt, help="check that every LFS object of some revisions is stored",
                       description="Check that every LFS object reachable from the given revisions (default HEAD; "
                                   "--all: every ref) is in the store with the right size; linked objects: that the "
                                   "original still exists unchanged. --deep re-reads and re-hashes every byte. Lists "
                                   "missing and corrupt objects with their paths and the commits that added them; "
                                   "exit status 1 when there is any.",
                       epilog="examples:\n"
                              "  lfs-s3-agent verify                 # what HEAD needs\n"
                              "  lfs-s3-agent verify --all --deep    # every ref, every byte re-hashed\n"
                              "  lfs-s3-agent verify v1.0 main --json")
    p.add_argument("revs", nargs="*", metavar="REV", help="revisions (default: HEAD)")
    p.add_argument("--all", dest="all_refs", action="store_true", help="every ref (branches, tags, remotes, stash)")
    p.add_argument("--deep", action="store_true", help="download and re-hash every object (slow; reads every byte)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("gc", formatter_class=fmt, help="delete store objects that no ref references",
                       description="Delete stored objects and link records under the prefix that no ref of this "
                                   "repository references (branches, tags, remote-tracking refs, stash, reflogs), "
                                   "older than the grace period, and abort our stale unfinished multipart uploads. "
                                   "A dry run unless --force. Keys that are not in lfs-s3-agent's layout are never "
                                   "touched. Exit status 3 when --max-requests stopped it (run again to continue).",
                       epilog="examples:\n"
                              "  lfs-s3-agent gc                       # dry run: what would be deleted\n"
                              "  lfs-s3-agent gc --force --grace 30d --max-requests 500\n"
                              "  git -C ../fork lfs ls-files --all --long > keep.txt\n"
                              "  lfs-s3-agent gc --force --keep-from keep.txt   # a prefix shared by two repos")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="list what would be deleted (the default)")
    mode.add_argument("--force", action="store_true", help="really delete")
    p.add_argument("--grace", default="7d", help="keep objects newer than this (default 7d; s/m/h/d/w)")
    p.add_argument("--max-requests", type=int, metavar="N", help="stop before making more than N S3 requests")
    p.add_argument("--keep-from", metavar="FILE", help="also keep these oids (one per line, # comments; - for stdin)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("ls", formatter_class=fmt, help="list the store's objects",
                       description="List every object in the store: date, size, stored or linked, whether HEAD "
                                   "references it (and at which path); keys that are not ours are listed apart.",
                       epilog="examples:\n  lfs-s3-agent ls\n  lfs-s3-agent ls --json | jq '.objects[] | "
                              "select(.in_head == false)'")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("du", formatter_class=fmt, help="totals: stored and linked bytes, referenced by HEAD or not",
                       description="Count the store's objects and bytes: stored, linked (and the bytes HEAD's linked "
                                   "objects keep in their originals), referenced by HEAD or not.",
                       epilog="example:\n  lfs-s3-agent du --json")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_du)

    p = sub.add_parser("copy", formatter_class=fmt, help="copy the store to another bucket/prefix/region/account",
                       description="Copy every object and link record of the store to s3://BUCKET/PREFIX: "
                                   "server-side (CopyObject; UploadPartCopy above 5 GB) when the destination's "
                                   "credentials can read the source, streamed through this machine otherwise. "
                                   "Restartable: objects already there with the same size and checksum are "
                                   "skipped. The destination defaults to the source's profile, region and endpoint.",
                       epilog="examples:\n"
                              "  lfs-s3-agent copy s3://new-bucket/my-repo --dry-run\n"
                              "  lfs-s3-agent copy s3://backup/my-repo --dest-region eu-west-1 --jobs 16\n"
                              "  lfs-s3-agent copy s3://archive/repo --dest-profile other-account "
                              "--dest-endpoint-url aws")
    p.add_argument("destination", metavar="s3://BUCKET/PREFIX")
    p.add_argument("--dry-run", action="store_true", help="say what would be copied; write nothing")
    p.add_argument("--jobs", type=int, default=8, help="objects copied in parallel (default 8)")
    p.add_argument("--dest-profile", metavar="PROFILE", help="AWS profile for the destination")
    p.add_argument("--dest-region", metavar="REGION", help="the destination bucket's region")
    p.add_argument("--dest-endpoint-url", metavar="URL",
                   help="the destination's endpoint ('aws' for AWS itself when the source has a custom one)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_copy)

    p = sub.add_parser("doctor", formatter_class=fmt, help="check the setup end to end and say how to fix it",
                       description="Check, in order: git and git-lfs versions, this repository's install state, the "
                                   "settings and where each comes from, the credentials' identity (never the "
                                   "secret), the bucket and its region, writing/reading/deleting a probe object "
                                   "under the prefix, and whether the endpoint accepts boto3's default checksums. "
                                   "Exit status 1 if any check failed.",
                       epilog="examples:\n  lfs-s3-agent doctor\n  lfs-s3-agent doctor --json")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_setting_flags(p)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("worker", formatter_class=fmt, help="show or stop the shared transfer workers",
                       description="The agents git-lfs starts hand small objects to one warm worker process per "
                                   "repository and configuration (setting shared_worker); it exits by itself "
                                   "after worker_idle seconds without work. status lists this user's workers; "
                                   "stop stops this repository's (--all: every one) after their transfers.",
                       epilog="examples:\n  lfs-s3-agent worker status\n  lfs-s3-agent worker stop --all")
    p.add_argument("action", choices=("status", "stop", "run"),
                   help="status, stop, or run (what an agent starts; not for humans)")
    p.add_argument("--all", action="store_true", help="every worker of this user, not only this repository's")
    p.add_argument("--json", action="store_true", help="print the workers as JSON")
    p.add_argument("--key", help=argparse.SUPPRESS)
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help=argparse.SUPPRESS)
    _add_setting_flags(p)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("config", formatter_class=fmt, help="show the resolved settings and their sources",
                       description="Show each setting, its value and where it came from.",
                       epilog="example:\n  lfs-s3-agent config --json")
    _add_setting_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_config)
    return parser


def _add_source_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("source bucket access (else git config lfs-s3-source.<bucket>.*)")
    group.add_argument("--no-sign-request", dest="unsigned", action="store_true", default=None,
                       help="public bucket: send unsigned requests (also AWS_NO_SIGN_REQUEST=1)")
    group.add_argument("--source-region", dest="region", metavar="REGION")
    group.add_argument("--source-endpoint-url", dest="endpoint_url", metavar="URL")
    group.add_argument("--source-profile", dest="profile", metavar="PROFILE")
    group.add_argument("--jobs", type=int, default=16, help="parallel requests (default 16)")
    group.add_argument("--json", action="store_true", help="print the result as JSON")


def _source_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {"region": args.region, "endpoint_url": args.endpoint_url, "profile": args.profile,
            "unsigned": args.unsigned}


def _serve_parser() -> argparse.ArgumentParser:
    """The parser for ``serve`` alone: git-lfs starts 8 agents in a row, each waits for this."""
    parser = argparse.ArgumentParser(prog="lfs-s3-agent")
    _add_serve(parser.add_subparsers(dest="command", required=True), argparse.RawDescriptionHelpFormatter)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _serve_parser() if argv[:1] == ["serve"] else build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except AgentError as exc:
        print(f"lfs-s3-agent: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# -- serve --------------------------------------------------------------------------------------

def _setup_logging(log_file: str | None, level: str | None) -> None:
    trace = os.environ.get("GIT_TRACE", "") not in ("", "0", "false")
    level = level or os.environ.get("LFS_S3_LOG_LEVEL") or ("info" if trace else "warning")
    log_file = log_file or os.environ.get("LFS_S3_LOG_FILE")
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"lfs-s3-agent[{os.getpid()}] %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.WARNING))
    logging.getLogger("botocore").setLevel(logging.WARNING)  # its debug output could leak request details


def _on_signal(signum: int, _frame: object) -> None:
    # Unwind through the finally blocks that remove temporary files.
    raise SystemExit(128 + signum)


def cmd_serve(args: argparse.Namespace) -> int:
    _setup_logging(args.log_file, args.log_level)
    # The protocol owns the real stdout; anything else printed (by us or a library) goes to stderr.
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    signal.signal(signal.SIGTERM, _on_signal)

    from lfs_s3_agent import agent, gitrepo
    from lfs_s3_agent.links import LocalLinks, local_links_dir
    from lfs_s3_agent.store import S3Store

    config_error: ConfigError | None = None
    tmp_dir = None
    links = None
    values: dict[str, Any] = {}
    try:
        resolved = settings.load(_flags(args))
        values = resolved.values
        if resolved.repo is not None:
            tmp_dir = gitrepo.lfs_storage_dir(resolved.repo, resolved.lfs_storage) / "tmp"
            links = LocalLinks(local_links_dir(resolved.repo.common_dir))
    except (ConfigError, GitError) as exc:
        config_error = exc if isinstance(exc, ConfigError) else ConfigError(exc.message)
        log.error("%s", config_error.message)
    store = S3Store(values, links=links)
    relay = None
    if config_error is None and tmp_dir is not None and values.get("shared_worker") == "true":
        try:
            relay = _worker_relay(args, resolved, tmp_dir)
        except (ImportError, AttributeError, OSError) as exc:  # no unix sockets or flock on this system
            log.info("no shared worker here (%s); transferring in this process", exc)
    try:
        return agent.serve(sys.stdin.buffer, protocol_out, store, tmp_dir=tmp_dir, config_error=config_error,
                           delegate=relay)
    except BrokenPipeError:
        return 0  # git-lfs went away; nothing left to tell it
    finally:
        if relay is not None:
            relay.close()
        if os.environ.get("LFS_S3_STATS_FILE"):
            from lfs_s3_agent.procstats import write_stats

            write_stats(os.environ["LFS_S3_STATS_FILE"], store.requests)


def _worker_relay(args: argparse.Namespace, resolved: settings.Resolved, tmp_dir: Any) -> Any:
    """The relay to this configuration's shared worker.

    Nothing of it runs before init: the key, the rendezvous imports and the connection wait for
    the first small object (git-lfs waits for each agent's init reply before starting the next).
    """
    from lfs_s3_agent.relay import WorkerRelay

    worker_args = [arg for spec in settings.FIELDS if getattr(args, spec.name, None) is not None
                   for arg in (spec.flag, str(getattr(args, spec.name)))]
    level = args.log_level or os.environ.get("LFS_S3_LOG_LEVEL")
    if level:
        worker_args += ["--log-level", level]
    cwd = os.getcwd()

    def connect() -> tuple[Any, str]:
        from lfs_s3_agent import rendezvous

        key = rendezvous.key_for(resolved)
        return rendezvous.connect(key, worker_args, cwd=cwd), key

    return WorkerRelay(connect, max_size=int(resolved.values["multipart_threshold"]), tmp_dir=tmp_dir)


# -- install / uninstall / clone / config ------------------------------------------------------

def _print_install(report: Any) -> None:
    print(f"lfs-s3-agent installed in {report.repo}")
    print(f"  objects go to {report.location}")
    if report.settings_file:
        print(f"  settings saved to {report.settings_file}: commit it so clones need no flags")
    if report.ran_lfs_install:
        print("  git-lfs was not set up here: ran `git lfs install --local`")
    for note in report.notes:
        print(f"  note: {note}")


def cmd_install(args: argparse.Namespace) -> int:
    from lfs_s3_agent.install import install

    report = install(_flags(args), save=args.save)
    if args.json:
        print(json.dumps({"repo": str(report.repo), "location": report.location, "written": report.written,
                          "settings_file": str(report.settings_file) if report.settings_file else None,
                          "ran_lfs_install": report.ran_lfs_install, "notes": report.notes}, indent=2))
        return 0
    _print_install(report)
    if report.has_lfs_files:
        print("next: git lfs pull   (fetches this checkout's LFS objects)")
    else:
        print("next: git lfs track '*.bin' && git add .gitattributes && git commit && git push")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from lfs_s3_agent.install import uninstall

    report = uninstall(keep_settings=args.keep_settings)
    if args.json:
        print(json.dumps({"removed": report.removed, "ran_lfs_uninstall": report.ran_lfs_uninstall}, indent=2))
        return 0
    if report.removed:
        print("removed: " + ", ".join(report.removed))
    else:
        print("nothing to remove: lfs-s3-agent was not installed here")
    if report.ran_lfs_uninstall:
        print("ran `git lfs uninstall --local` (install had set git-lfs up)")
    return 0


def cmd_clone(args: argparse.Namespace) -> int:
    from lfs_s3_agent.install import clone

    target, report = clone(args.url, args.directory, _flags(args), save=args.save)
    _print_install(report)
    print(f"cloned into {target} with LFS objects from {report.location}")
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    from lfs_s3_agent.linking import link

    report = link(args.patterns, args.to, checkout=args.checkout, hash_missing=args.hash_missing, force=args.force,
                  source_flags=_source_flags(args), jobs=args.jobs, quiet=args.json)
    if args.json:
        print(json.dumps({"linked": report.linked, "bytes_referenced": report.bytes_referenced,
                          "bytes_downloaded": report.bytes_downloaded, "hashed": report.hashed,
                          "paths": report.paths, "gitattributes": report.gitattributes}, indent=2))
        return 0
    if report.gitattributes:
        print(f"added to .gitattributes: {report.gitattributes}")
    print(report.summary())
    print("next: git add .gitattributes " + (args.to if " " not in args.to else f'"{args.to}"')
          + " && git commit -m 'link data' && git push")
    return 0


def cmd_add_checksum(args: argparse.Namespace) -> int:
    from lfs_s3_agent.linking import add_checksum

    report = add_checksum(args.patterns, dry_run=args.dry_run, source_flags=_source_flags(args), jobs=args.jobs,
                          quiet=args.json)
    if args.json:
        print(json.dumps({"added": report.added, "already": report.already, "too_large": report.too_large,
                          "dry_run": report.dry_run}, indent=2))
        return 1 if report.too_large else 0
    verb = "would add" if report.dry_run else "added"
    for url in report.added:
        print(f"{verb} SHA-256: {url}")
    print(f"{verb} checksums to {len(report.added)} objects; {report.already} already had one")
    if report.added and not report.dry_run:
        print("note: copying in place does not keep ACLs; re-apply any object ACLs you rely on", file=sys.stderr)
    for url in report.too_large:
        print(f"skipped (over 5 GB, CopyObject cannot add a full-object SHA-256 in place): {url}; "
              "use `lfs-s3-agent link --hash-missing` for it", file=sys.stderr)
    return 1 if report.too_large else 0


def cmd_checkout(args: argparse.Namespace) -> int:
    from lfs_s3_agent.console import human_bytes
    from lfs_s3_agent.linking import checkout

    report = checkout(args.paths, quiet=args.json)
    if args.json:
        print(json.dumps({"files": report.files, "bytes_downloaded": report.bytes_downloaded}, indent=2))
        return 0
    print(f"checked out {len(report.files)} files, {human_bytes(report.bytes_downloaded)} downloaded")
    return 0


def cmd_pre_push(args: argparse.Namespace) -> int:
    from lfs_s3_agent.prepush import pre_push

    return pre_push(args.remote, args.url, sys.stdin.buffer.read())


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def cmd_verify(args: argparse.Namespace) -> int:
    from lfs_s3_agent.maintenance import verify

    report = verify(args.revs, all_refs=args.all_refs, deep=args.deep, flags=_flags(args), quiet=args.json)
    if args.json:
        _print_json(report.to_json())
    else:
        _print_lines(report.render())
    return 0 if report.ok else 1


def cmd_gc(args: argparse.Namespace) -> int:
    from lfs_s3_agent.maintenance import gc

    report = gc(_flags(args), force=args.force, grace=args.grace, max_requests=args.max_requests,
                keep_from=args.keep_from, quiet=args.json)
    if args.json:
        _print_json(report.to_json())
    else:
        _print_lines(report.render())
    if report.stopped and not args.json:
        print(f"lfs-s3-agent: {report.stopped}", file=sys.stderr)
    return report.exit_status


def cmd_ls(args: argparse.Namespace) -> int:
    from lfs_s3_agent.maintenance import inventory, ls_json, ls_render

    inv = inventory(_flags(args), quiet=args.json)
    if args.json:
        _print_json(ls_json(inv))
    else:
        _print_lines(ls_render(inv))
    return 0


def cmd_du(args: argparse.Namespace) -> int:
    from lfs_s3_agent.maintenance import du

    usage = du(_flags(args), quiet=args.json)
    if args.json:
        _print_json(usage.to_json())
    else:
        _print_lines(usage.render())
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from lfs_s3_agent.copying import copy

    def echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    plain = not args.json and not sys.stderr.isatty()  # one line per object when there is no progress bar
    report = copy(args.destination, flags=_flags(args), dry_run=args.dry_run, jobs=args.jobs,
                  dest_profile=args.dest_profile, dest_region=args.dest_region,
                  dest_endpoint_url=args.dest_endpoint_url, quiet=args.json, echo=echo if plain else None)
    if args.json:
        _print_json(report.to_json())
    else:
        _print_lines(report.render())
    return 0 if report.ok else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    from lfs_s3_agent.doctor import MARKS, doctor

    report = doctor(_flags(args))
    if args.json:
        _print_json(report.to_json())
    else:
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        try:
            "".join(MARKS.values()).encode(encoding)
            unicode = True
        except (UnicodeEncodeError, LookupError):
            unicode = False
        _print_lines(report.render(unicode=unicode))
    return 0 if report.ok else 1


def cmd_worker(args: argparse.Namespace) -> int:
    from lfs_s3_agent import rendezvous

    if args.action == "run":
        if not args.key:
            raise ConfigError("worker run is started by the agent with --key; use status or stop")
        from lfs_s3_agent import worker

        ready = worker.main_stdio()
        _setup_logging(None, args.log_level)
        return worker.run(args.key, _flags(args), ready=ready)
    try:
        directory = rendezvous.runtime_dir()
    except rendezvous.RendezvousError as exc:
        raise ConfigError(str(exc)) from None
    repo = None
    if not args.all:
        from lfs_s3_agent import gitrepo

        repo = str(gitrepo.repo_paths().common_dir)
    found = rendezvous.workers(directory, repo=repo, stop=args.action == "stop")
    if args.json:
        _print_json({"runtime_dir": str(directory), "workers": found})
        return 0 if all(w.get("stopped", True) for w in found) else 1
    if not found:
        print(f"no shared worker running{'' if args.all else ' for this repository'} ({directory})")
    for w in found:
        state = ("stopped" if w.get("stopped") else f"NOT stopped: {w.get('error')}") if args.action == "stop" \
            else (f"{w['active']} active session(s)" if w["active"] else f"idle {w['idle_seconds']:.0f} s of "
                  f"{w['idle_limit']:.0f}")
        print(f"pid {w['pid']}  {w['repo']}  {w['sessions']} session(s) served, {state}")
    return 0 if all(w.get("stopped", True) for w in found) else 1


def cmd_config(args: argparse.Namespace) -> int:
    resolved = settings.load(_flags(args), require_bucket=False)
    status = 0 if resolved.values["bucket"] else 1
    if args.json:
        out = {name: {"value": resolved.values[name], "source": resolved.sources[name]}
               for name in resolved.values}
        print(json.dumps(out, indent=2))
        return status
    if resolved.repo is None:
        print("(not in a git repository: only flags, LFS_S3_* and global git config apply)", file=sys.stderr)
    width = max(len(spec.name) for spec in settings.FIELDS)
    for spec in settings.FIELDS:
        value = resolved.values[spec.name]
        shown = "(not set)" if value is None or value == "" else value
        print(f"{spec.name:<{width}}  {shown!s:<30}  {resolved.sources[spec.name]}")
    if status:
        print("\nno bucket configured: run `lfs-s3-agent install --bucket NAME`", file=sys.stderr)
    return status
