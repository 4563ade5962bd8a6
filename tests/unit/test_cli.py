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


def test_help_lists_only_the_settings_a_command_uses() -> None:
    commands = subcommands()
    for name in ("gc", "verify", "ls"):
        text = commands[name].format_help()
        assert "--bucket" in text and "--endpoint-url" in text, name
        for unused in ("--storage-class", "--sse", "--shared-worker", "--worker-idle", "--head-before-put"):
            assert unused not in text, f"{name} --help lists {unused}"
    assert "--storage-class" in commands["install"].format_help()


def test_verify_outside_a_repository_says_so(tmp_path: object, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(str(tmp_path))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for command in (["verify"], ["gc"], ["prune"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert "not inside a git repository" in err and "no bucket" not in err, (command, err)


def test_clone_options_go_after_a_double_dash(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["clone", "--depth", "1", "https://example.com/r.git"])
    assert info.value.code == 2
    assert "go after --" in capsys.readouterr().err


def test_gc_dry_run_hint_repeats_the_users_flags() -> None:
    from lfs_s3_agent.commands.gc import rerun_command

    hint = rerun_command({"bucket": "b1", "prefix": "my repo"}, grace="0", max_requests=50, keep_from="k.txt")
    assert hint == ("lfs-s3-agent gc --force --grace 0 --max-requests 50 --keep-from k.txt "
                    "--bucket b1 --prefix 'my repo'")
    assert rerun_command({}, grace="7d", max_requests=None, keep_from=None) == "lfs-s3-agent gc --force"
