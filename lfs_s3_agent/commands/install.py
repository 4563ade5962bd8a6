"""Set a repository up for the agent (``install``/``uninstall``) and clone one (``clone``).

``install`` writes only local git config (plus the committed settings file with
``--save``): the four keys git-lfs needs to run us as its standalone transfer
agent, and the settings given as flags. ``--remote NAME`` scopes the agent to that
remote's LFS URL (git-lfs's per-URL ``lfs.<url>.standalonetransferagent``), so other
remotes keep their host's LFS. ``install --global --url PREFIX`` writes the same keys
to ``~/.gitconfig``, scoped to URL prefixes: ``.lfsconfig`` cannot carry them (git-lfs
ignores them there for safety), but the user's own config can, and then a plain
``git clone`` of a repository that commits ``.lfs-s3-agent.toml`` needs no step. Both point
git-lfs at the sh launcher (``launcher.py``), which keeps its stamp in each clone's git dir.
``uninstall`` (``--global``) removes exactly what ``install`` (``--global``) wrote.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lfs_s3_agent import gitrepo, launcher, settings
from lfs_s3_agent.commands import prepush
from lfs_s3_agent.errors import ConfigError, GitError

AGENT_NAME = "lfs-s3-agent"
LFS_INSTALL_MARK = f"{settings.GIT_SECTION}.lfs-install"
#: git-lfs adds ``lfs.repositoryformatversion`` when it sets a repository up; uninstall takes it back.
FORMAT_KEY = "lfs.repositoryformatversion"
FORMAT_MARK = f"{settings.GIT_SECTION}.lfs-format-added"


STANDALONE_KEY = "lfs.standalonetransferagent"
#: git-lfs's per-URL form (git's urlmatch against the LFS endpoint URL)
SCOPED_STANDALONE = re.compile(r"^lfs\.(.+)\.standalonetransferagent$")


def agent_keys(scope_url: str | None = None, agent_path: Path | None = None) -> dict[str, str]:
    """The git config git-lfs reads to start us (``sh -c '"<path>" <args>'``), for every remote or one URL:
    the launcher (``launcher.write_launcher``) when given, else Python itself."""
    base = f"lfs.customtransfer.{AGENT_NAME}"
    return {
        f"{base}.path": str(agent_path) if agent_path else sys.executable,
        f"{base}.args": "serve" if agent_path else "-P -m lfs_s3_agent serve",
        f"{base}.concurrent": "true",
        (f"lfs.{scope_url}.standalonetransferagent" if scope_url else STANDALONE_KEY): AGENT_NAME,
    }


_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.*)$")


def lfs_url_prefix(url: str, *, repository: bool = False, base: Path | None = None) -> str:
    """The LFS endpoint URL (or a prefix of it) git-lfs derives from a git remote URL.

    git-lfs talks HTTPS to the host of an SSH remote (``git@host:org/repo.git`` ->
    ``https://host/org/repo.git/info/lfs``) and uses ``file:///abs/path`` for a remote on disk.
    With ``repository`` the URL names one repository: git-lfs adds ``.git`` to an HTTP path without it.
    """
    url = url.strip()
    if not url:
        raise ConfigError("an empty URL: give a remote URL or prefix, e.g. --url https://github.com/my-org")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("ssh", "git", "git+ssh", "ssh+git"):
        rest = url.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        host = hostport.rsplit("@", 1)[-1].split(":", 1)[0]
        url = f"https://{host}/{path}"
    elif scheme in ("http", "https", "file"):
        pass
    elif scheme:
        raise ConfigError(f"{url!r}: unsupported URL scheme {scheme!r}; give an https://, ssh://, git@host:path "
                          "or local path URL")
    elif (match := _SCP_LIKE.match(url)) and not os.path.isabs(url):
        url = f"https://{match[1]}/{match[2].lstrip('/')}"
    else:  # a path on disk
        url = "file://" + str(((base or Path.cwd()) / os.path.expanduser(url)).resolve())
    url = url.rstrip("/")
    if repository and url.startswith(("http://", "https://")) and not url.endswith((".git", "/info/lfs")):
        url += ".git"
    return url


@dataclass
class InstallReport:
    repo: Path
    written: dict[str, str] = field(default_factory=dict)
    settings_file: Path | None = None
    ran_lfs_install: bool = False
    location: str = ""
    has_lfs_files: bool = False
    checkout_failed: bool = False
    notes: list[str] = field(default_factory=list)
    cloned_into: Path | None = None
    remote: str | None = None
    scope_url: str | None = None
    unshadowed: dict[str, str] = field(default_factory=dict)  #: local keys --save removed (they hid the file)

    def to_json(self) -> dict[str, Any]:
        return {"repo": str(self.repo), "location": self.location, "written": self.written,
                "settings_file": str(self.settings_file) if self.settings_file else None,
                "removed_overrides": self.unshadowed, "remote": self.remote, "lfs_url": self.scope_url,
                "ran_lfs_install": self.ran_lfs_install, "notes": self.notes,
                **({"cloned_into": str(self.cloned_into)} if self.cloned_into else {})}

    def render(self) -> list[str]:
        lines = [f"lfs-s3-agent installed in {self.repo}"
                 + (f" for remote {self.remote} ({self.scope_url}); other remotes keep their own LFS"
                    if self.remote else ""), f"  objects go to {self.location}"]
        if self.settings_file:
            lines.append(f"  settings saved to {self.settings_file}: commit it so clones need no flags")
        for key, value in self.unshadowed.items():
            lines.append(f"  removed local git config {key}={value}: it would have overridden the file")
        if self.ran_lfs_install:
            lines.append("  git-lfs was not set up here: ran `git lfs install --local`")
        lines.extend(f"  note: {note}" for note in self.notes)
        if self.cloned_into:
            lines.append(f"cloned into {self.cloned_into} with LFS objects from {self.location}")
        elif self.checkout_failed:
            lines.append("next: git reset --hard HEAD   (the clone's checkout failed before the agent was set up; "
                         "this checks the files out again, through the agent. It also discards uncommitted "
                         "changes to tracked files)")
        elif self.has_lfs_files:
            lines.append("next: git lfs pull   (fetches this checkout's LFS objects)")
        else:
            lines.append("next: git lfs track '*.bin' && git add .gitattributes && git commit && git push")
        return lines


def require_git_lfs() -> str:
    try:
        proc = subprocess.run(["git", "lfs", "version"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH: install git") from None
    if proc.returncode != 0:
        raise GitError("git-lfs is not installed: install it (Debian/Ubuntu: `apt-get install git-lfs`, "
                       "macOS: `brew install git-lfs`, others: https://git-lfs.com) and run this again")
    return proc.stdout.strip()


def install(flags: Mapping[str, Any], *, save: bool = False, remote: str | None = None,
            cwd: str | os.PathLike[str] | None = None) -> InstallReport:
    """Configure the repository at ``cwd``; nothing is written unless the result is valid.

    ``remote``: the agent serves only that remote's LFS URL; other remotes keep their host's LFS.
    """
    repo = gitrepo.repo_paths(cwd)
    require_git_lfs()
    given = {k: v for k, v in flags.items() if v is not None}
    scope_url = remote_lfs_url(remote, repo, cwd) if remote else None
    # Validate the settings as they will be after this install before writing anything (an endpoint
    # changed by a commit is exactly what running install again accepts).
    resolved = settings.load(given, cwd=cwd, accept_endpoint=True)
    report = InstallReport(repo=repo.toplevel or repo.git_dir, remote=remote, scope_url=scope_url)
    if save:
        if repo.toplevel is None:
            raise ConfigError("--save needs a working tree (this is a bare repository)")
        report.settings_file = save_settings_file(repo.toplevel, given)
        # A local key would silently win over the file just written: take it out, and say so.
        local = dict(gitrepo.read_config(rf"^{settings.GIT_SECTION}\.", cwd=cwd, scope="local"))
        for name in given:
            key = settings.FIELDS_BY_NAME[name].git_key
            if key in local and gitrepo.unset_config(key, cwd=cwd):
                report.unshadowed[key] = local[key]
        resolved = settings.load({}, cwd=cwd)
        shadowing = [f"{name} (from {source})" for name, source in resolved.sources.items()
                     if name in given and source != settings.SETTINGS_FILE]
        if shadowing:
            report.notes.append("still overriding the file: " + ", ".join(shadowing) + "; remove them to use "
                                "the file's values (`git config --global --unset KEY`, or unset the variable)")
    else:
        from_file = [name for name, source in resolved.sources.items()
                     if source == settings.SETTINGS_FILE and name in given]
        if from_file:
            report.notes.append(f"git config now overrides {settings.SETTINGS_FILE} for: {', '.join(from_file)}")
        for name in given:
            key = settings.FIELDS_BY_NAME[name].git_key
            gitrepo.set_config(key, str(resolved.values[name]), cwd=cwd)
            report.written[key] = str(resolved.values[name])
    if not _lfs_filters_configured(cwd):
        had_format = bool(gitrepo.read_config(rf"^{FORMAT_KEY}$", cwd=cwd, scope="local"))
        gitrepo.git("lfs", "install", "--local", cwd=cwd)
        gitrepo.set_config(LFS_INSTALL_MARK, "true", cwd=cwd)
        if not had_format and gitrepo.read_config(rf"^{FORMAT_KEY}$", cwd=cwd, scope="local"):
            gitrepo.set_config(FORMAT_MARK, "true", cwd=cwd)
        report.ran_lfs_install = True
    local = dict(gitrepo.read_config(r"^lfs\.", cwd=cwd, scope="local"))
    if scope_url and local.get(STANDALONE_KEY) == AGENT_NAME:
        gitrepo.unset_config(STANDALONE_KEY, cwd=cwd)  # was for every remote: now for this one only
        report.notes.append(f"the agent no longer serves every remote, only {remote} ({scope_url})")
    for key, value in agent_keys(scope_url, launcher.write_launcher(repo.common_dir / "lfs-s3-agent")).items():
        gitrepo.set_config(key, value, cwd=cwd)
        report.written[key] = value
    # The endpoint in force now is the one this clone accepts; the agent refuses another one that a
    # later commit writes into the settings file, until install runs again.
    accepted = settings.load(cwd=cwd, accept_endpoint=True).values.get("endpoint_url") or "aws"
    gitrepo.set_config(settings.ACCEPTED_ENDPOINT_KEY, accepted, cwd=cwd)
    report.written[settings.ACCEPTED_ENDPOINT_KEY] = accepted
    report.notes.extend(resolved.warnings)
    hook, outcome = prepush.install_hook(cwd)
    if outcome == "custom":
        report.notes.append(custom_hook_note(hook))
    # Read .gitattributes rather than ask git-lfs, which would write its own state into the config.
    attributes = (repo.toplevel / ".gitattributes") if repo.toplevel else None
    report.has_lfs_files = bool(attributes and attributes.is_file()
                                and "filter=lfs" in attributes.read_text(encoding="utf-8", errors="replace"))
    report.checkout_failed = report.has_lfs_files and _checkout_incomplete(cwd)
    report.location = location(resolved)
    return report


def custom_hook_note(hook: Path) -> str:
    return (f"{hook} is a custom hook, left as it is: to push linked files that were never downloaded, call "
            "`lfs-s3-agent pre-push \"$@\"` in it instead of `git lfs pre-push`")


def location(resolved: settings.Resolved) -> str:
    """Where objects go, with where each part of it was set: ``s3://b/p at URL (bucket from ...)``."""
    s = resolved.values
    where = f"s3://{s['bucket']}/{s['prefix']}".rstrip("/") + (f" at {s['endpoint_url']}" if s["endpoint_url"]
                                                                else "")
    by_source: dict[str, list[str]] = {}
    for name in ("bucket", "prefix", "endpoint_url", "region"):
        if resolved.sources.get(name, "default") != "default":
            by_source.setdefault(resolved.sources[name], []).append(name)
    origin = "; ".join(f"{', '.join(names)} from {source}" for source, names in by_source.items())
    return f"{where} ({origin})" if origin else where


def _checkout_incomplete(cwd: str | os.PathLike[str] | None) -> bool:
    """A plain ``git clone`` whose checkout failed (the agent was not set up yet) leaves an index that
    lacks every file (``D `` for each path); ``git lfs pull`` cannot mend that ("cannot add to the index").
    Ordinary local changes never look like that, so they never get ``git reset --hard`` as advice."""
    proc = gitrepo.git("status", "--porcelain", "--untracked-files=no", cwd=cwd, check=False)
    lines = proc.stdout.splitlines()
    return proc.returncode == 0 and bool(lines) and all(line.startswith("D  ") for line in lines)


def remote_lfs_url(remote: str, repo: gitrepo.RepoPaths, cwd: str | os.PathLike[str] | None) -> str:
    """The LFS URL git-lfs uses for ``remote`` (``remote.NAME.lfsurl``, else derived from its URL)."""
    config = dict(gitrepo.read_config(rf"^remote\.{re.escape(remote)}\.(url|lfsurl)$", cwd=cwd))
    if f"remote.{remote}.lfsurl" in config:
        return config[f"remote.{remote}.lfsurl"].rstrip("/")
    url = config.get(f"remote.{remote}.url")
    if not url:
        names = [key.split(".")[1] for key, _ in gitrepo.read_config(r"^remote\..*\.url$", cwd=cwd)]
        raise ConfigError(f"no remote named {remote!r} here (remotes: {', '.join(names) or 'none'}); add it with "
                          f"`git remote add {remote} URL` first")
    return lfs_url_prefix(url, repository=True, base=repo.toplevel or repo.git_dir)


def _lfs_filters_configured(cwd: str | os.PathLike[str] | None) -> bool:
    return bool(gitrepo.read_config(r"^filter\.lfs\.process$", cwd=cwd))


def save_settings_file(toplevel: Path, given: Mapping[str, Any]) -> Path:
    """Merge the given settings into the committed file, written atomically."""
    path = toplevel / settings.SETTINGS_FILE
    problems: list[str] = []
    current = settings.read_settings_file(path, problems)
    if problems:
        raise ConfigError("; ".join(problems))
    merged = {**current, **{k: settings.FIELDS_BY_NAME[k].normalize(v) for k, v in given.items()}}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(settings.render_settings_file(merged), encoding="utf-8")
    os.replace(tmp, path)
    return path


@dataclass
class UninstallReport:
    removed: list[str] = field(default_factory=list)
    ran_lfs_uninstall: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"removed": self.removed, "ran_lfs_uninstall": self.ran_lfs_uninstall}

    def render(self) -> list[str]:
        lines = ["removed: " + ", ".join(self.removed) if self.removed
                 else "nothing to remove: lfs-s3-agent was not installed here"]
        if self.ran_lfs_uninstall:
            lines.append("ran `git lfs uninstall` (install had set git-lfs up)")
        return lines


def uninstall(*, keep_settings: bool = False, cwd: str | os.PathLike[str] | None = None) -> UninstallReport:
    """Remove what ``install`` wrote to the local git config (never the committed file)."""
    gitrepo.repo_paths(cwd)
    report = UninstallReport()
    local = dict(gitrepo.read_config(r".", cwd=cwd, scope="local"))
    for key in agent_keys():
        if key == STANDALONE_KEY and local.get(key) != AGENT_NAME:
            continue  # someone else's agent: not ours to remove
        if key in local and gitrepo.unset_config(key, cwd=cwd):
            report.removed.append(key)
    for key, value in local.items():  # install --remote: the per-URL form
        if SCOPED_STANDALONE.match(key) and value == AGENT_NAME and gitrepo.unset_config(key, cwd=cwd):
            report.removed.append(key)
    if prepush.remove_hook(cwd):
        report.removed.append("hooks/pre-push (ours; the one it replaced, if any, is back)")
    if local.get(LFS_INSTALL_MARK) == "true":
        gitrepo.git("lfs", "uninstall", "--local", cwd=cwd)
        report.ran_lfs_uninstall = True
        gitrepo.unset_config(LFS_INSTALL_MARK, cwd=cwd)
        report.removed.append(LFS_INSTALL_MARK)
    if settings.ACCEPTED_ENDPOINT_KEY in local and gitrepo.unset_config(settings.ACCEPTED_ENDPOINT_KEY, cwd=cwd):
        report.removed.append(settings.ACCEPTED_ENDPOINT_KEY)
    if local.get(FORMAT_MARK) == "true":
        for key in (FORMAT_KEY, FORMAT_MARK):
            if gitrepo.unset_config(key, cwd=cwd):
                report.removed.append(key)
    if not keep_settings:
        for spec in settings.FIELDS:
            if spec.git_key in local and gitrepo.unset_config(spec.git_key, cwd=cwd):
                report.removed.append(spec.git_key)
    _drop_empty_sections("local", cwd=cwd)
    return report


def _drop_empty_sections(scope: str, cwd: str | os.PathLike[str] | None = None) -> None:
    """Drop the now-empty sections git leaves behind."""
    for section in (f"lfs.customtransfer.{AGENT_NAME}", settings.GIT_SECTION):
        if not gitrepo.read_config(rf"^{section.replace('.', '[.]')}\.", cwd=cwd, scope=scope):
            gitrepo.git("config", f"--{scope}", "--remove-section", section, cwd=cwd, check=False)


# -- the user's ~/.gitconfig ------------------------------------------------------------------------

#: install --global ran ``git lfs install --skip-repo`` (uninstall --global takes it back)
GLOBAL_LFS_INSTALL_MARK = f"{settings.GIT_SECTION}.lfs-install"


@dataclass
class GlobalInstallReport:
    urls: list[str]
    written: dict[str, str] = field(default_factory=dict)
    ran_lfs_install: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"scope": "global", "urls": self.urls, "written": self.written,
                "ran_lfs_install": self.ran_lfs_install, "notes": self.notes}

    def render(self) -> list[str]:
        lines = ["lfs-s3-agent installed in your global git config (~/.gitconfig) for LFS URLs under:"]
        lines.extend(f"  {url}" for url in self.urls)
        if self.ran_lfs_install:
            lines.append("  git-lfs's filters were not set up: ran `git lfs install --skip-repo`")
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.append(f"next: git clone URL   (a repository under these URLs that commits {settings.SETTINGS_FILE} "
                     "needs no other step; one without it fails with a message saying how to add it)")
        return lines


def install_global(urls: list[str]) -> GlobalInstallReport:
    """Register the agent in ``~/.gitconfig`` for remotes under ``urls`` (git-lfs's per-URL standalone agent)."""
    require_git_lfs()
    if not urls:
        raise ConfigError("--global needs the remote URLs it applies to, e.g. `lfs-s3-agent install --global --url "
                          "https://github.com/my-org` (repeat --url for more); other remotes keep their own LFS")
    prefixes = list(dict.fromkeys(lfs_url_prefix(url) for url in urls))
    report = GlobalInstallReport(urls=prefixes)
    if not gitrepo.read_config(r"^filter\.lfs\.process$", scope="global"):
        gitrepo.git("lfs", "install", "--skip-repo")
        gitrepo.set_config(GLOBAL_LFS_INSTALL_MARK, "true", scope="global")
        report.ran_lfs_install = True
    # The same sh launcher a per-clone install uses: it finds the repository with git rev-parse and
    # keeps its stamp in each clone's git dir, and ~/.gitconfig is one of the sources it dates the
    # stamp against, so the first agent of a fresh clone validates its settings in Python (code 32 on
    # bad ones) and the others answer init without starting Python.
    try:
        agent_path: Path | None = launcher.write_launcher()
    except ConfigError as exc:  # no writable data directory: git-lfs runs Python itself (slower, not wrong)
        agent_path = None
        report.notes.append(f"{exc.message}; git-lfs will start Python for every agent (set XDG_DATA_HOME to a "
                            "writable directory and run install --global again)")
    keys: dict[str, str] = {}
    for prefix in prefixes:
        keys.update(agent_keys(prefix, agent_path))
    for key, value in keys.items():
        gitrepo.set_config(key, value, scope="global")
        report.written[key] = value
    if any(key == STANDALONE_KEY and value == AGENT_NAME for key, value in gitrepo.read_config(
            rf"^{re.escape(STANDALONE_KEY)}$", scope="global")):
        report.notes.append(f"~/.gitconfig also sets {STANDALONE_KEY}={AGENT_NAME}, for every remote: remove it "
                            f"with `git config --global --unset {STANDALONE_KEY}` to keep other hosts' LFS working")
    return report


def uninstall_global(urls: list[str]) -> UninstallReport:
    """Remove what ``install --global`` wrote: the given URLs' keys, or all of them (then the agent's too)."""
    wanted = {lfs_url_prefix(url) for url in urls}
    report = UninstallReport()
    config = gitrepo.read_config(r"^lfs\.|^" + re.escape(GLOBAL_LFS_INSTALL_MARK) + "$", scope="global")
    ours = [key for key, value in config if (m := SCOPED_STANDALONE.match(key)) and value == AGENT_NAME
            and key != STANDALONE_KEY and (not wanted or m[1].rstrip("/") in wanted)]
    for key in ours:
        if gitrepo.unset_config(key, scope="global"):
            report.removed.append(key)
    left = [key for key, value in gitrepo.read_config(r"standalonetransferagent$", scope="global")
            if value == AGENT_NAME]
    if not left:  # no URL uses the agent any more: unregister it, and undo our `git lfs install`
        for key in agent_keys():
            if key != STANDALONE_KEY and gitrepo.unset_config(key, scope="global"):
                report.removed.append(key)
        if dict(config).get(GLOBAL_LFS_INSTALL_MARK) == "true":
            gitrepo.git("lfs", "uninstall", "--skip-repo")
            gitrepo.unset_config(GLOBAL_LFS_INSTALL_MARK, scope="global")
            report.removed.append(GLOBAL_LFS_INSTALL_MARK)
            report.ran_lfs_uninstall = True
        _drop_empty_sections("global")
    elif wanted and not ours:
        report.notes.append("no --url matched; installed for: " + ", ".join(
            m[1] for key in left if (m := SCOPED_STANDALONE.match(key))))
    return report


def clone_dir_for(url: str) -> str:
    """The directory name ``git clone URL`` would pick."""
    tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    tail = tail[:-4] if tail.endswith(".git") else tail
    return tail or "repo"


def clone(url: str, directory: str | None, flags: Mapping[str, Any], *, save: bool = False,
          git_args: list[str] | None = None) -> tuple[Path, InstallReport]:
    """``GIT_LFS_SKIP_SMUDGE=1 git clone [git_args]``, then ``install``, then ``git lfs pull``."""
    target = Path(directory or clone_dir_for(url)).absolute()
    env = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"}
    # "--" keeps a URL or directory that starts with "-" from being read as an option.
    proc = subprocess.run(["git", "clone", *(git_args or []), "--", url, str(target)], env=env, check=False)
    if proc.returncode != 0:
        raise GitError(f"`git clone {' '.join([*(git_args or []), url])}` failed (exit status {proc.returncode}); "
                       "see git's message above")
    report = install(flags, save=save, cwd=target)
    proc = subprocess.run(["git", "lfs", "pull"], cwd=target, check=False)
    if proc.returncode != 0:
        raise GitError(f"cloned into {target} and installed, but `git lfs pull` failed; fix the cause "
                       "shown above and run `git lfs pull` in that directory")
    report.cloned_into = target
    return target, report


@dataclass
class ConfigReport:
    """Each setting, its value and where it came from (``lfs-s3-agent config``)."""

    resolved: settings.Resolved

    @property
    def exit_status(self) -> int:
        return 0 if self.resolved.values["bucket"] else 1

    def to_json(self) -> dict[str, Any]:
        return {name: {"value": self.resolved.values[name], "source": self.resolved.sources[name]}
                for name in self.resolved.values}

    def render(self) -> list[str]:
        lines = []
        width = max(len(spec.name) for spec in settings.FIELDS)
        for spec in settings.FIELDS:
            value = self.resolved.values[spec.name]
            shown = "(not set)" if value is None or value == "" else value
            lines.append(f"{spec.name:<{width}}  {shown!s:<30}  {self.resolved.sources[spec.name]}")
        return lines

    @property
    def notes(self) -> list[str]:
        notes = []
        if self.resolved.repo is None:
            notes.append("(not in a git repository: only flags, LFS_S3_* and global git config apply)")
        if self.exit_status:
            notes.append(settings.NO_BUCKET)
        return notes


def config(flags: Mapping[str, Any], cwd: str | os.PathLike[str] | None = None) -> ConfigReport:
    return ConfigReport(settings.load(flags, cwd=cwd, require_bucket=False))
