"""The README documents every setting, error code and command the code has."""

from __future__ import annotations

import argparse
from pathlib import Path

from lfs_s3_agent import settings
from lfs_s3_agent.cli import build_parser
from lfs_s3_agent.errors import Code

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_settings_table() -> None:
    for spec in settings.FIELDS:
        assert f"| `{spec.name}` | `{spec.flag}` | `{spec.env}` | `{spec.git_key}` |" in README, spec.name


def test_every_error_code_is_in_the_table() -> None:
    for code in Code:
        assert f"| {int(code)} | `{code.name}` |" in README, code.name


def test_every_command_is_documented() -> None:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in action.choices:
        assert f"lfs-s3-agent {name}" in README or f"`{name}`" in README, name
