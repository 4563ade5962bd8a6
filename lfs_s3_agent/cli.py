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

    p = sub.add_parser("install", formatter_class=fmt, help="configure this repository to use the agent",
                       description="Write the git config git-lfs needs to use lfs-s3-agent as its "
                                   "standalone transfer agent, and the given settings. Idempotent.",
                       epilog="examples:\n"
                              "  lfs-s3-agent install --bucket my-bucket --prefix my-repo --save\n"
                              "  lfs-s3-agent install          # in a clone with .lfs-s3-agent.toml")
    _add_setting_flags(p)
    p.add_argument("--save", action="store_true",
                   help=f"write the settings to {settings.SETTINGS_FILE} (commit it) instead of git config")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("uninstall", formatter_class=fmt, help="remove what install wrote",
                       description="Remove the git config that install wrote (the committed settings "
                                   "file stays).",
                       epilog="example:\n  lfs-s3-agent uninstall --keep-settings")
    p.add_argument("--keep-settings", action="store_true", help="keep the lfs-s3-agent.* settings")
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

    p = sub.add_parser("config", formatter_class=fmt, help="show the resolved settings and their sources",
                       description="Show each setting, its value and where it came from.",
                       epilog="example:\n  lfs-s3-agent config --json")
    _add_setting_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
    try:
        return agent.serve(sys.stdin.buffer, protocol_out, store, tmp_dir=tmp_dir, config_error=config_error)
    except BrokenPipeError:
        return 0  # git-lfs went away; nothing left to tell it
    finally:
        if os.environ.get("LFS_S3_STATS_FILE"):
            _write_stats(os.environ["LFS_S3_STATS_FILE"], store.requests)


def _write_stats(path: str, requests: dict[str, int]) -> None:
    """Append this process's CPU time, peak memory and S3 requests as one JSON line (for `make bench`)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    record = {"pid": os.getpid(), "user": usage.ru_utime, "sys": usage.ru_stime,
              "maxrss_kib": usage.ru_maxrss, "requests": requests}
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    except OSError as exc:
        log.warning("cannot write stats to %s: %s", path, exc)


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
    _print_install(report)
    if report.has_lfs_files:
        print("next: git lfs pull   (fetches this checkout's LFS objects)")
    else:
        print("next: git lfs track '*.bin' && git add .gitattributes && git commit && git push")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from lfs_s3_agent.install import uninstall

    report = uninstall(keep_settings=args.keep_settings)
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
