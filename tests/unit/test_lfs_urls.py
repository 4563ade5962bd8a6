"""The LFS URL `install --global --url` / `--remote` derive from a git remote URL (git-lfs's rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lfs_s3_agent.commands.install import lfs_url_prefix
from lfs_s3_agent.errors import ConfigError


@pytest.mark.parametrize(("url", "expected"), [
    ("https://github.com/my-org", "https://github.com/my-org"),
    ("https://github.com/my-org/", "https://github.com/my-org"),
    ("git@github.com:my-org/repo.git", "https://github.com/my-org/repo.git"),
    ("github.com:my-org", "https://github.com/my-org"),
    ("ssh://git@host.example:2222/team/repo.git", "https://host.example/team/repo.git"),
    ("file:///srv/git/repo.git", "file:///srv/git/repo.git"),
    ("/srv/git/repo.git", "file:///srv/git/repo.git"),
])
def test_prefixes_take_the_form_git_lfs_matches(url: str, expected: str) -> None:
    assert lfs_url_prefix(url) == expected


def test_a_repository_url_gets_the_git_suffix_git_lfs_adds(tmp_path: Path) -> None:
    assert lfs_url_prefix("https://host/org/repo", repository=True) == "https://host/org/repo.git"
    assert lfs_url_prefix("../remote.git", repository=True, base=tmp_path / "clone") == f"file://{tmp_path}/remote.git"


@pytest.mark.parametrize("url", ["", "ftp://host/x"])
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        lfs_url_prefix(url)
