"""Set a repository up for the agent (``install``/``uninstall``) and clone one (``clone``).

``install`` writes only local git config (plus the committed settings file with
``--save``): the four keys git-lfs needs to run us as its standalone transfer
agent, and the settings given as flags. ``.lfsconfig`` cannot carry those keys
(git-lfs ignores them there for safety), so every clone runs ``install`` once.
``uninstall`` removes exactly what ``install`` wrote.
"""

from __future__ import annotations

import os
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


def agent_keys(agent_path: Path | None = None) -> dict[str, str]:
    """The git config git-lfs reads to start us (``sh -c '"<path>" <args>'``): the launcher
    (``launcher.write_launcher``) when given, else Python itself."""
    base = f"lfs.customtransfer.{AGENT_NAME}"
    return {
        f"{base}.path": str(agent_path) if agent_path else sys.executable,
        f"{base}.args": "serve" if agent_path else "-m lfs_s3_agent serve",
        f"{base}.concurrent": "true",
        "lfs.standalonetransferagent": AGENT_NAME,
    }


@dataclass
class InstallReport:
    repo: Path
    written: dict[str, str] = field(default_factory=dict)
    settings_file: Path | None = None
    ran_lfs_install: bool = False
    location: str = ""
    has_lfs_files: bool = False
    notes: list[str] = field(default_factory=list)
    cloned_into: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {"repo": str(self.repo), "location": self.location, "written": self.written,
                "settings_file": str(self.settings_file) if self.settings_file else None,
                "ran_lfs_install": self.ran_lfs_install, "notes": self.notes,
                **({"cloned_into": str(self.cloned_into)} if self.cloned_into else {})}

    def render(self) -> list[str]:
        lines = [f"lfs-s3-agent installed in {self.repo}", f"  objects go to {self.location}"]
        if self.settings_file:
            lines.append(f"  settings saved to {self.settings_file}: commit it so clones need no flags")
        if self.ran_lfs_install:
            lines.append("  git-lfs was not set up here: ran `git lfs install --local`")
        lines.extend(f"  note: {note}" for note in self.notes)
        if self.cloned_into:
            lines.append(f"cloned into {self.cloned_into} with LFS objects from {self.location}")
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


def install(flags: Mapping[str, Any], *, save: bool = False, cwd: str | os.PathLike[str] | None = None
            ) -> InstallReport:
    """Configure the repository at ``cwd``; nothing is written unless the result is valid."""
    repo = gitrepo.repo_paths(cwd)
    require_git_lfs()
    given = {k: v for k, v in flags.items() if v is not None}
    # Validate the settings as they will be after this install before writing anything.
    resolved = settings.load(given, cwd=cwd)
    report = InstallReport(repo=repo.toplevel or repo.git_dir)
    if save:
        if repo.toplevel is None:
            raise ConfigError("--save needs a working tree (this is a bare repository)")
        report.settings_file = save_settings_file(repo.toplevel, given)
        shadowed = [key for key, _ in gitrepo.read_config(rf"^{settings.GIT_SECTION}\.", cwd=cwd)
                    if key.split(".", 1)[1].replace("-", "_") in given]
        if shadowed:
            report.notes.append("git config also sets " + ", ".join(shadowed) + ", which overrides the "
                                "file; remove with `git config --unset KEY`")
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
    for key, value in agent_keys(launcher.write_launcher(repo.common_dir / "lfs-s3-agent")).items():
        gitrepo.set_config(key, value, cwd=cwd)
        report.written[key] = value
    hook, outcome = prepush.install_hook(cwd)
    if outcome == "custom":
        report.notes.append(f"{hook} is a custom hook, left as it is: to push linked files that were never "
                            "downloaded, call `lfs-s3-agent pre-push \"$@\"` in it instead of `git lfs pre-push`")
    # Read .gitattributes rather than ask git-lfs, which would write its own state into the config.
    attributes = (repo.toplevel / ".gitattributes") if repo.toplevel else None
    report.has_lfs_files = bool(attributes and attributes.is_file()
                                and "filter=lfs" in attributes.read_text(encoding="utf-8", errors="replace"))
    s = resolved.values
    where = f"s3://{s['bucket']}/{s['prefix']}".rstrip("/")
    report.location = where + (f" at {s['endpoint_url']}" if s["endpoint_url"] else "")
    return report


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

    def to_json(self) -> dict[str, Any]:
        return {"removed": self.removed, "ran_lfs_uninstall": self.ran_lfs_uninstall}

    def render(self) -> list[str]:
        lines = ["removed: " + ", ".join(self.removed) if self.removed
                 else "nothing to remove: lfs-s3-agent was not installed here"]
        if self.ran_lfs_uninstall:
            lines.append("ran `git lfs uninstall --local` (install had set git-lfs up)")
        return lines


def uninstall(*, keep_settings: bool = False, cwd: str | os.PathLike[str] | None = None) -> UninstallReport:
    """Remove what ``install`` wrote to the local git config (never the committed file)."""
    gitrepo.repo_paths(cwd)
    report = UninstallReport()
    local = dict(gitrepo.read_config(r".", cwd=cwd, scope="local"))
    for key in agent_keys():
        if key == "lfs.standalonetransferagent" and local.get(key) != AGENT_NAME:
            continue  # someone else's agent: not ours to remove
        if key in local and gitrepo.unset_config(key, cwd=cwd):
            report.removed.append(key)
    if prepush.remove_hook(cwd):
        report.removed.append("hooks/pre-push (ours; the one it replaced, if any, is back)")
    if local.get(LFS_INSTALL_MARK) == "true":
        gitrepo.git("lfs", "uninstall", "--local", cwd=cwd)
        report.ran_lfs_uninstall = True
        gitrepo.unset_config(LFS_INSTALL_MARK, cwd=cwd)
        report.removed.append(LFS_INSTALL_MARK)
    if local.get(FORMAT_MARK) == "true":
        for key in (FORMAT_KEY, FORMAT_MARK):
            if gitrepo.unset_config(key, cwd=cwd):
                report.removed.append(key)
    if not keep_settings:
        for spec in settings.FIELDS:
            if spec.git_key in local and gitrepo.unset_config(spec.git_key, cwd=cwd):
                report.removed.append(spec.git_key)
    # Drop the now-empty sections git leaves behind.
    for section in (f"lfs.customtransfer.{AGENT_NAME}", settings.GIT_SECTION):
        if not gitrepo.read_config(rf"^{section.replace('.', '[.]')}\.", cwd=cwd, scope="local"):
            gitrepo.git("config", "--local", "--remove-section", section, cwd=cwd, check=False)
    return report


def clone_dir_for(url: str) -> str:
    """The directory name ``git clone URL`` would pick."""
    tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    tail = tail[:-4] if tail.endswith(".git") else tail
    return tail or "repo"


def clone(url: str, directory: str | None, flags: Mapping[str, Any], *, save: bool = False,
          git_args: list[str] | None = None) -> tuple[Path, InstallReport]:
    """``GIT_LFS_SKIP_SMUDGE=1 git clone``, then ``install``, then ``git lfs pull``."""
    target = Path(directory or clone_dir_for(url)).absolute()
    env = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"}
    proc = subprocess.run(["git", "clone", *(git_args or []), url, str(target)], env=env, check=False)
    if proc.returncode != 0:
        raise GitError(f"`git clone {url}` failed (exit status {proc.returncode}); see git's message above")
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
