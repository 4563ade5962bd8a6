"""What git-lfs and git run: the agent launcher and the pre-push hook, two small POSIX sh scripts.

git-lfs starts ``lfs.concurrenttransfers`` agents (8) one after another, each waiting for the
previous one's init reply, and waits for all of them to exit; for a small push 7 of the 8 never
get a request. A Python agent costs ~60 ms to its ``{}`` and ~10 ms to exit, so the agent git-lfs
runs is a sh script that:

- answers ``{}`` to init itself when the settings are known good: a *stamp* written by the last
  Python agent that validated them, holding a signature (the git dir, the work tree, the agent's
  arguments, every ``LFS_S3_*`` setting, the environment that chooses git's config files and the
  ``GIT_CONFIG_KEY_<n>``/``GIT_CONFIG_VALUE_<n>`` pairs of ``GIT_CONFIG_COUNT``) and
  older than every config source (local, worktree, global, XDG and system git config, and the
  committed settings file). Anything else (no stamp, another signature, a source changed since)
  starts Python for the init, which validates, answers (code 32 on bad settings) and writes the stamp;
- exits 0 on ``terminate`` or end of input without starting Python;
- when the stamp's shared worker is not listening and the first transfer request is for an object
  the worker would take (up to the ``multipart_threshold`` the stamp records), starts it (``worker
  run``, the command the stamp records) in the background just before it starts Python, so both
  warm up at once; a marker directory makes that one start, and agents wait for it rather than
  start another (``rendezvous.connect``). A session of large objects only never starts it: a cold
  worker costs ~0.5 s of CPU (botocore, pydantic, the S3 client), which a 1 GiB download paid for
  nothing when the worker was started at the first ``{}`` (measured: 0.47 s of 2.7 CPU s for
  512 MiB). Waiting for the request costs a small transfer only the time git-lfs takes to start its
  other agents (a few ms each);
- ``exec``s Python at the first transfer request, handing it the init line it already answered and
  the request: for an object the shared worker takes, the thin relay (``thinrelay.py``: ``python -S``,
  ~45 ms of CPU where the full agent costs ~200 ms), which relays it and the session's next small
  objects to the worker and ``exec``s the full agent for anything else; otherwise the full agent.

The stamp also lists every file the settings were read from (git config files with their
``include.path`` files, ``gitrepo.config_files``, and every file an include names, also one missing or
empty then; the settings file; ``HEAD`` and its branch when the settings came from ``HEAD``), each with
its identity and by its bytes (a name that is not UTF-8 too): one that is newer than the stamp, gone, or
missing then and there now (whatever its date: ``cp -p``) sends the launcher to Python for the init, and
one replaced without a newer mtime (``mv``, a symlink pointed elsewhere) is caught by the thin relay,
which removes the stamp; the thin relay trusts the stamp's settings, so nothing else may change them unseen.

Every Python start here is ``python -P``: git-lfs runs agents in the work tree, and without ``-P``
the current directory comes first on ``sys.path``, so a repository that commits an
``lfs_s3_agent/`` folder would run its own code as the agent, with the user's credentials.

The launcher finds the repository with ``git rev-parse``, so one script serves every repository of
this user and interpreter: ``$XDG_DATA_HOME/lfs-s3-agent/agent-<hash of the interpreter>.sh``
(``~/.local/share``; the git common dir when that is not writable), and moving a repository
does not break it.

The stamp's mtime is set before the validation began, so a config source written at or after that
moment is always newer than it: 50 ms before where the launcher's shell compares file times to the
nanosecond (probed by ``install``; the kernel's file clock lags by a few ms at most), 2 s before
where it compares whole seconds.

The pre-push hook starts Python only when this clone has link records; otherwise it is
git-lfs's own hook.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

from lfs_s3_agent import settings, thinrelay
from lfs_s3_agent.errors import ConfigError

LAUNCHER_MARK = "# lfs-s3-agent launcher"
HOOK_MARK = "# lfs-s3-agent pre-push hook"
STAMP_NAME = "lfs-s3-agent.stamp"  #: in each worktree's git dir
#: Environment that chooses which git config files exist or what they say (besides the settings' own).
GIT_CONFIG_ENV = ("GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
                  "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG", "HOME", "XDG_CONFIG_HOME", "LFS_S3_RUNTIME_DIR",
                  "XDG_RUNTIME_DIR")
#: How far before the validation the stamp is dated: for shells that compare whole seconds, and for
#: those that compare nanoseconds (file times come from a coarse clock, a few ms behind).
STAMP_MARGIN = 2.0
STAMP_MARGIN_NS = 0.05
SHELL = "/bin/sh"  #: the launcher's interpreter (its #! line)


def shell_compares_nanoseconds(shell: str = SHELL) -> bool:
    """Does ``[ a -nt b ]`` in this shell see two file times 0.4 s apart within one second?"""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        older, newer = Path(tmp, "older"), Path(tmp, "newer")
        base = int(time.time()) - 10
        for path, when in ((older, base + 0.1), (newer, base + 0.5)):
            path.touch()
            os.utime(path, (when, when))
        try:
            proc = subprocess.run([shell, "-c", '[ "$1" -nt "$2" ]', "sh", str(newer), str(older)],
                                  capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
        return proc.returncode == 0


def sh_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def launcher_path(python: str | None = None) -> Path:
    """Where this interpreter's launcher lives (one per user and interpreter)."""
    python = python or sys.executable
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    digest = hashlib.sha256(python.encode()).hexdigest()[:12]
    return Path(data) / "lfs-s3-agent" / f"agent-{digest}.sh"


def launcher_script(python: str | None = None, margin: float = STAMP_MARGIN) -> str:
    """The agent git-lfs runs as ``sh -c '<path> serve [flags]'``; ``margin``: how early stamps are dated."""
    py = sh_quote(python or sys.executable)
    env_names = sorted({spec.env for spec in settings.FIELDS} | set(GIT_CONFIG_ENV))
    # Each value with its length first (joined as text, 'a|' then '' would sign like 'a' then '|'), and a
    # ':' only when it is set: git reads an empty GIT_CONFIG_GLOBAL otherwise than none.
    env_sig = "|".join("${#%s}${%s+:}${%s-}" % (name, name, name) for name in env_names)  # noqa: UP031 - sh
    return f"""#!{SHELL}
{LAUNCHER_MARK}: written by `lfs-s3-agent install`, replaced by the next install; do not edit.
# Answers git-lfs's init without Python when the settings are known good, exits on terminate
# without Python, and starts Python (lfs_s3_agent serve) at the first transfer request.
py={py}
nl='
'
tab='	'
IFS= read -r init || [ -n "$init" ] || exit 0
slow() {{ exec "$py" -P -m lfs_s3_agent "$@" --first-line "$init"; }}
thin='import sys
sys.path.append(sys.argv[1])
try:
    from lfs_s3_agent.thinrelay import main
except ImportError:
    import os
    os.execv(sys.argv[2], [sys.argv[2], "-P", "-m", "lfs_s3_agent", *sys.argv[5:]])
main(sys.argv[2:])'
case $init in
*'"event":"init"'*) ;;
*) slow "$@" ;;
esac
set -f
if [ -z "${{GIT_DIR-}}${{GIT_COMMON_DIR-}}${{GIT_WORK_TREE-}}" ] && [ -d "$PWD/.git" ] && [ ! -L "$PWD/.git" ]; then
  gd=$PWD/.git cd=$PWD/.git top=$PWD  # at the top of a plain clone (what git-lfs usually has): no git to run
else
  dirs=$(git rev-parse --path-format=absolute --absolute-git-dir --git-common-dir --show-toplevel 2>/dev/null) \\
    || slow "$@"
  IFS=$nl
  set -- $dirs "$@"
  IFS=
  gd=$1 cd=$2 top=$3
  shift 3
fi
stamp=$gd/{STAMP_NAME}
global=${{GIT_CONFIG_GLOBAL:-$HOME/.gitconfig}}
xdg=${{XDG_CONFIG_HOME:-$HOME/.config}}/git/config
system=${{GIT_CONFIG_SYSTEM:-/etc/gitconfig}}
sig="v3|$gd|$cd|$top|$*|{env_sig}|"
for f in "$cd/config" "$gd/config.worktree" "$top/{settings.SETTINGS_FILE}" "$global" "$xdg" "$system"; do
  if [ -e "$f" ]; then sig="${{sig}}1"; else sig="${{sig}}0"; fi
done
# git config -c as the environment gives it (git-config(1) ENVIRONMENT): the keys and values count, not
# only how many there are. More than 9999, or not a number: Python decides, as it does for a signature too
# long to pass as one argument (the kernel takes 128 KiB; a character may take 4 bytes).
n=${{GIT_CONFIG_COUNT-}}
case $n in *[!0-9]*|?????*) slow "$@" ;; esac
i=0
while [ "$i" -lt "${{n:-0}}" ]; do
  eval "k=\\${{GIT_CONFIG_KEY_$i+=\\$GIT_CONFIG_KEY_$i}} v=\\${{GIT_CONFIG_VALUE_$i+=\\$GIT_CONFIG_VALUE_$i}}"
  sig="$sig|${{#k}}$k${{#v}}$v"  # lengths first: no value can pass for another pair; unset is not empty
  i=$((i + 1))
done
[ "${{#sig}}" -le 30000 ] || slow "$@"
slowinit() {{ exec "$py" -P -m lfs_s3_agent "$@" --stamp "$stamp" --stamp-sig "$sig" \\
  --stamp-margin {margin:g} --first-line "$init"; }}
case $sig in *"$nl"*) slow "$@" ;; esac
saved= sock= wcmd= limit= cfg= tmpd= mark= pkg= files= born=
[ -f "$stamp" ] && {{ IFS= read -r saved; IFS= read -r sock; IFS= read -r wcmd; IFS= read -r limit
  IFS= read -r cfg; IFS= read -r tmpd; IFS= read -r mark; IFS= read -r pkg
  while IFS= read -r f; do case $f in
    absent"$tab"*) born=$born${{f#*"$tab"}}$nl ;;
    *) files=$files${{f#*"$tab"}}$nl ;;
  esac; done; }} < "$stamp"
[ "$saved" = "$sig" ] || slowinit "$@"
for f in "$cd/config" "$gd/config.worktree" "$top/{settings.SETTINGS_FILE}" "$global" "$xdg" "$system"; do
  if [ "$f" -nt "$stamp" ]; then slowinit "$@"; fi
done
IFS=$nl
for f in $files; do  # every file git config read at the validation (include.path...): still there, not newer
  if [ ! -e "$f" ] || [ "$f" -nt "$stamp" ]; then IFS=; slowinit "$@"; fi
done
for f in $born; do  # and every one an include named that was missing then: still missing, whatever its date
  if [ -e "$f" ]; then IFS=; slowinit "$@"; fi
done
IFS=
printf '{{}}\\n' || exit 0
while IFS= read -r line || [ -n "$line" ]; do
  case $line in
  *'"event":"terminate"'*) exit 0 ;;
  '') ;;
  *)
    # An object the shared worker takes and no worker listening: start one in the background while
    # Python starts (the first agent to get here does it; the worker's start removes the marker).
    # (An asynchronous command of a non-interactive shell ignores SIGINT: a Ctrl-C stops git, not it.)
    size=${{line#*'"size":'}}
    size=${{size# }}
    size=${{size%%[!0-9]*}}
    if [ -n "$size" ] && [ -n "$limit" ] && [ "$size" -le "$limit" ] 2>/dev/null && [ -n "$sock" ]; then
      # Only in a runtime directory of ours (Python checks it is private before it writes the stamp; it
      # may have been swept since and made again by someone else): no marker, no log through their links.
      if [ -n "$wcmd" ] && [ -O "${{sock%/*}}" ] && [ ! -S "$sock" ] && mkdir "$sock.starting" 2>/dev/null; then
        ( eval "set -- $wcmd"; exec "$py" -P -m lfs_s3_agent "$@" </dev/null >/dev/null 2>>"${{sock%.sock}}.log" ) &
      fi
      # The thin relay (thinrelay.py): hands small objects to the worker without the full agent's start.
      [ -n "$cfg" ] && [ -n "$pkg" ] && exec "$py" -P -S -c "$thin" "$pkg" "$py" "$stamp" "$sig" \\
        "$@" --answered-init "$init" --first-line "$line"
    fi
    exec "$py" -P -m lfs_s3_agent "$@" --answered-init "$init" --first-line "$line" ;;
  esac
  line=
done
exit 0
"""


def launcher_python(path: str) -> str | None:
    """The interpreter a launcher starts; None when ``path`` is not one of our launchers."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if LAUNCHER_MARK not in text:
        return None
    import shlex

    for line in text.splitlines():
        if line.startswith("py="):
            words = shlex.split(line[3:])
            return words[0] if words else None
    return None


def write_launcher(fallback_dir: Path | None = None, python: str | None = None) -> Path:
    """Write (atomically, when it differs) the launcher; its path goes in ``lfs.customtransfer.*.path``.

    ``fallback_dir`` (e.g. ``<git common dir>/lfs-s3-agent``) is used when the user's data dir
    cannot be written.
    """
    text = launcher_script(python, STAMP_MARGIN_NS if shell_compares_nanoseconds() else STAMP_MARGIN)
    candidates = [launcher_path(python)]
    if fallback_dir is not None:
        candidates.append(fallback_dir / candidates[0].name)
    error: OSError | None = None
    for path in candidates:
        try:
            if path.is_file() and path.read_text(encoding="utf-8", errors="replace") == text:
                return path
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(0o755)
            os.replace(tmp, path)
            return path
        except OSError as exc:
            error = exc
    raise ConfigError(f"cannot write the agent launcher {candidates[0]}: {error}")


class StampedWorker(NamedTuple):
    """What a stamp records of the shared worker: for the launcher, which starts it early at the first
    request for an object it takes, and for the thin relay (``thinrelay.py``), which relays to it."""

    socket: str  #: where it listens
    command: str  #: its ``lfs_s3_agent worker run`` arguments, sh-quoted
    limit: int  #: the largest object it takes (bytes): ``multipart_threshold``
    config: str  #: the settings half of its key (``workerkey.config_digest``)
    tmp_dir: str  #: git-lfs's lfs/tmp, where downloads are made
    mark: str  #: the path of the endpoint-unreachable mark (``unreachable``)
    package: str  #: the directory that holds the ``lfs_s3_agent`` package (``python -S`` needs it on sys.path)

    def lines(self) -> list[str]:
        return [self.socket, self.command, str(self.limit), self.config, self.tmp_dir, self.mark, self.package]


#: Lines of a stamp before its list of config files: the signature and a ``StampedWorker``.
STAMP_HEAD = thinrelay.STAMP_HEAD
STAMP_ERRORS = thinrelay.STAMP_ERRORS
assert len(StampedWorker._fields) + 1 == STAMP_HEAD  # the thin relay reads what write_stamp writes


def write_stamp(path: str, signature: str, validated_at: float, worker: StampedWorker | None = None,
                margin: float = STAMP_MARGIN, config_files: list[str] | tuple[str, ...] = ()) -> None:
    """Record that the settings the launcher described by ``signature`` were valid at ``validated_at``
    (the file's mtime, ``margin`` seconds earlier), their shared worker (``StampedWorker``), and every file
    they were read from (git config files with their includes: ``gitrepo.config_files``; the settings file;
    ``HEAD`` and its branch when the settings came from ``HEAD``), each with its identity
    (``thinrelay.file_identity``): the launcher checks that none is newer than the stamp or gone, and the
    thin relay that none was replaced with an older-dated file (``mv``, a symlink pointed elsewhere)."""
    worker_lines = worker.lines() if worker is not None else [""] * len(StampedWorker._fields)
    lines = [signature, *worker_lines, *(f"{thinrelay.file_identity(f)}\t{f}" for f in config_files)]
    if any("\n" in line for line in lines):
        return
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8", errors=STAMP_ERRORS)
        when = validated_at - margin
        os.utime(tmp, (when, when))
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)  # only an optimisation: the next agent validates again


def restamp_worker(path: Path, worker: StampedWorker | None) -> None:
    """Point an existing stamp at another shared worker, keeping its signature and its date.

    Only a stamp for the same settings (the same settings digest: only the environment the key
    hashes differs) is repointed, and its signature and date are kept: this can never make settings
    look validated that were not.
    """
    if worker is None or any("\n" in line for line in worker.lines()):
        return
    try:
        st = path.stat()
        lines = path.read_text(encoding="utf-8", errors=STAMP_ERRORS).split("\n")
    except (OSError, UnicodeDecodeError):
        return
    if lines[-1:] == [""]:
        lines.pop()  # the last line's newline
    if len(lines) < STAMP_HEAD or lines[1:STAMP_HEAD] == worker.lines():
        return
    if lines[1 + StampedWorker._fields.index("config")] != worker.config:
        return  # validated for other settings (newer, or older than ours): only the environment may differ
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        new = [lines[0], *worker.lines(), *lines[STAMP_HEAD:]]
        tmp.write_text("".join(f"{line}\n" for line in new), encoding="utf-8", errors=STAMP_ERRORS)
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # only an optimisation, as the stamp itself


def hook_script(python: str | None = None) -> str:
    """The pre-push hook: git-lfs's own unless this clone has link records or objects imported without their bytes
    (then ``lfs-s3-agent pre-push``)."""
    py = sh_quote(python or sys.executable)
    return (
        "#!/bin/sh\n"
        f"{HOOK_MARK}: runs git-lfs's pre-push, letting linked files that were never downloaded through.\n"
        "command -v git-lfs >/dev/null 2>&1 || { printf >&2 \"\\n%s\\n\\n\" \"This repository is configured "
        "for Git LFS but 'git-lfs' was not found on your path.\"; exit 2; }\n"
        "# Python only when this clone has link records or imported objects, or the committed settings file\n"
        "# sets what only the user may set (its warning must show in git push's output); otherwise this is\n"
        "# git-lfs's own hook.\n"
        "grep -Eqs '^[[:space:]]*(profile|ca_bundle|tls_verify)[[:space:]]*=' .lfs-s3-agent.toml && "
        f"exec {py} -P -m lfs_s3_agent pre-push \"$@\"\n"
        "if [ -z \"${GIT_DIR-}${GIT_COMMON_DIR-}\" ] && [ -d .git ]; then links=.git/lfs-s3-agent/links\n"
        "else links=$(git rev-parse --path-format=absolute --git-common-dir)/lfs-s3-agent/links; fi\n"
        "for f in \"$links\"/*.json \"${links%/links}\"/imported/*; do\n"
        f"  [ -e \"$f\" ] && exec {py} -P -m lfs_s3_agent pre-push \"$@\"\n"
        "done\n"
        "exec git lfs pre-push \"$@\"\n"
    )
