import argparse

import pytest

from lfs_s3_agent import __version__
from lfs_s3_agent.cli import build_parser, main


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_has_help_and_an_example() -> None:
    commands = subcommands()
    assert {"serve", "install", "uninstall", "clone", "config"} <= set(commands)
    for name, parser in commands.items():
        text = parser.format_help()
        assert parser.description, name
        assert "example" in text, f"{name} --help shows no example"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_install_outside_a_repo_refuses(tmp_path: object, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(str(tmp_path))
    assert main(["install", "--bucket", "abc"]) == 1
    assert "not inside a git repository" in capsys.readouterr().err


def test_every_command_but_the_protocol_ones_has_json_output() -> None:
    for name, parser in subcommands().items():
        if name in ("serve", "pre-push", "clone"):  # speak git-lfs's protocol / run git's own output
            continue
        assert "--json" in parser.format_help(), f"{name} has no --json"
