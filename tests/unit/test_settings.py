import dataclasses
import subprocess
from pathlib import Path

import pytest

from lfs_s3_agent import settings
from lfs_s3_agent.errors import ConfigError
from lfs_s3_agent.settings import Settings


def git_config(repo: Path, key: str, value: str) -> None:
    subprocess.run(["git", "config", "--local", key, value], cwd=repo, check=True)


def test_precedence_flags_env_git_file(repo_dir: Path) -> None:
    (repo_dir / settings.SETTINGS_FILE).write_text(
        'bucket = "from-file"\nprefix = "file-prefix"\nregion = "eu-west-1"\naddressing_style = "virtual"\n')
    git_config(repo_dir, "lfs-s3-agent.prefix", "git-prefix")
    git_config(repo_dir, "lfs-s3-agent.region", "eu-central-1")
    git_config(repo_dir, "lfs-s3-agent.bucket", "from-git")
    env = {"LFS_S3_REGION": "ap-south-1", "LFS_S3_BUCKET": "from-env"}
    resolved = settings.load({"bucket": "from-flag"}, cwd=repo_dir, env=env)
    assert resolved.values["bucket"] == "from-flag"
    assert resolved.sources["bucket"] == "flag --bucket"
    assert (resolved.values["region"], resolved.sources["region"]) == ("ap-south-1", "env LFS_S3_REGION")
    assert (resolved.values["prefix"], resolved.sources["prefix"]) == ("git-prefix", "git config lfs-s3-agent.prefix")
    assert (resolved.values["addressing_style"], resolved.sources["addressing_style"]) == ("virtual",
                                                                                          settings.SETTINGS_FILE)
    assert resolved.sources["sse"] == "default"


def test_works_from_a_subdirectory(repo_dir: Path) -> None:
    (repo_dir / settings.SETTINGS_FILE).write_text('bucket = "from-file"\n')
    sub = repo_dir / "a" / "b"
    sub.mkdir(parents=True)
    assert settings.load(cwd=sub, env={}).values["bucket"] == "from-file"


def test_missing_bucket_names_the_fix(repo_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"lfs-s3-agent install --bucket NAME"):
        settings.load(cwd=repo_dir, env={})


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        ({"bucket": "s3://b/p"}, "not a URL"),
        ({"bucket": "a"}, "is not a bucket name"),
        ({"bucket": "ok-bucket", "endpoint_url": "minio:9000"}, "is not an endpoint URL"),
        ({"bucket": "ok-bucket", "addressing_style": "sideways"}, "not one of: auto, path, virtual"),
        ({"bucket": "ok-bucket", "prefix": "a/../b"}, "not a usable key prefix"),
        ({"bucket": "ok-bucket", "sse_kms_key_id": "k"}, "add --sse aws:kms"),
        ({"bucket": "ok-bucket", "max_attempts": "lots"}, "not a whole number"),
        ({"bucket": "ok-bucket", "timeout": "0"}, "out of range"),
    ],
)
def test_invalid_values_are_explained(repo_dir: Path, flags: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        settings.load(flags, cwd=repo_dir, env={})


def test_every_problem_is_reported_with_its_source(repo_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        settings.load({"sse": "rot13"}, cwd=repo_dir, env={"LFS_S3_BUCKET": "s3://x"})
    message = info.value.message
    assert "env LFS_S3_BUCKET" in message and "flag --sse" in message
    assert "no bucket is configured" not in message  # the bucket was given, just wrong


def test_unknown_keys_are_refused(repo_dir: Path) -> None:
    git_config(repo_dir, "lfs-s3-agent.bukket", "x")
    with pytest.raises(ConfigError, match=r"unknown setting lfs-s3-agent.bukket.*git config --unset"):
        settings.load({"bucket": "abc"}, cwd=repo_dir, env={})
    subprocess.run(["git", "config", "--unset", "lfs-s3-agent.bukket"], cwd=repo_dir, check=True)
    (repo_dir / settings.SETTINGS_FILE).write_text('bucket = "abc"\nregoin = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting 'regoin'"):
        settings.load(cwd=repo_dir, env={})


def test_broken_settings_file_is_reported(repo_dir: Path) -> None:
    (repo_dir / settings.SETTINGS_FILE).write_text("bucket = \n")
    with pytest.raises(ConfigError, match="cannot read"):
        settings.load(cwd=repo_dir, env={})
    # Not UTF-8 (TOML must be): tomllib raises UnicodeDecodeError, which used to crash the agent at init.
    (repo_dir / settings.SETTINGS_FILE).write_bytes(b'bucket = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="cannot read"):
        settings.load(cwd=repo_dir, env={})


def test_normalizes_prefix_and_endpoint(repo_dir: Path) -> None:
    values = settings.load({"bucket": "abc", "prefix": "/team//repo/", "endpoint_url": "http://h:9000/"},
                           cwd=repo_dir, env={}).values
    assert values["prefix"] == "team/repo"
    assert values["endpoint_url"] == "http://h:9000"


def test_rendered_file_reads_back(repo_dir: Path) -> None:
    values = {"bucket": "abc", "prefix": 'we"ird', "region": "eu-west-1", "max_attempts": 7, "sse": "none"}
    (repo_dir / settings.SETTINGS_FILE).write_text(settings.render_settings_file(values))
    resolved = settings.load(cwd=repo_dir, env={})
    assert resolved.values["prefix"] == 'we"ird' and resolved.values["max_attempts"] == 7
    assert "sse" not in settings.render_settings_file(values)  # defaults stay out


def test_outside_a_repo_env_still_works(tmp_path: Path) -> None:
    resolved = settings.load(cwd=tmp_path, env={"LFS_S3_BUCKET": "abc"})
    assert resolved.repo is None and resolved.values["bucket"] == "abc"


def test_one_schema_every_source_derives_from() -> None:
    """Names, defaults, rules and help live once, on the Settings dataclass; FIELDS is derived from it."""
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert list(fields) == [spec.name for spec in settings.FIELDS]
    for spec in settings.FIELDS:
        assert spec.help, spec.name
        assert fields[spec.name].default == spec.default, spec.name
        assert spec.env == "LFS_S3_" + spec.name.upper() and spec.flag == "--" + spec.name.replace("_", "-")
    resolved = settings.load({"bucket": "abc"}, env={})
    assert resolved.settings == Settings(**resolved.values)
    assert resolved.settings.replace(prefix="p").prefix == "p"


@pytest.mark.parametrize(("text", "expected"), [("8MiB", 8 << 20), ("64M", 64 << 20), ("1.5GiB", 3 << 29),
                                                 ("5242880", 5 << 20), ("10 mb", 10**7)])
def test_sizes_accept_units(text: str, expected: int) -> None:
    assert settings.parse_size(text) == expected


def test_size_settings_are_range_checked(repo_dir: Path) -> None:
    with pytest.raises(ConfigError, match="out of range"):
        settings.load({"bucket": "abc", "part_size": "1MiB"}, cwd=repo_dir, env={})
    with pytest.raises(ConfigError, match="is not a size"):
        settings.load({"bucket": "abc", "multipart_threshold": "big"}, cwd=repo_dir, env={})


def test_tls_checks_can_only_be_turned_off_for_a_custom_endpoint(repo_dir: Path) -> None:
    from lfs_s3_agent.s3.client import ClientSpec, make_client

    with pytest.raises(ConfigError, match="custom endpoint only"):
        settings.load({"bucket": "abc", "tls_verify": "false"}, cwd=repo_dir, env={})
    default = make_client(ClientSpec.for_store(Settings(bucket="abc", endpoint_url="https://minio.internal:9000")))
    assert default.raw._endpoint.http_session._verify is not False
    off = settings.load({"bucket": "abc", "tls_verify": "false", "endpoint_url": "https://minio.internal:9000"},
                        cwd=repo_dir, env={}).settings
    assert make_client(ClientSpec.for_store(off)).raw._endpoint.http_session._verify is False
    bundle = Settings(bucket="abc", ca_bundle="/etc/ssl/private-ca.pem")
    assert make_client(ClientSpec.for_store(bundle)).raw._endpoint.http_session._verify == "/etc/ssl/private-ca.pem"


def test_the_committed_file_cannot_set_what_describes_the_user(repo_dir: Path) -> None:
    (repo_dir / settings.SETTINGS_FILE).write_text('bucket = "abc"\nprofile = "production"\nca_bundle = "/x.pem"\n'
                                                   'tls_verify = "false"\nendpoint_url = "https://minio.example"\n')
    resolved = settings.load(cwd=repo_dir, env={})
    assert resolved.values["profile"] is None and resolved.values["ca_bundle"] is None
    assert resolved.values["tls_verify"] == "true" and resolved.values["endpoint_url"] == "https://minio.example"
    assert len(resolved.warnings) == 3 and "lfs-s3-agent install --profile VALUE" in resolved.warnings[0]
    git_config(repo_dir, "lfs-s3-agent.profile", "mine")  # the user's own configuration may
    assert settings.load(cwd=repo_dir, env={}).values["profile"] == "mine"


def test_an_endpoint_the_clone_did_not_accept_is_refused(repo_dir: Path) -> None:
    (repo_dir / settings.SETTINGS_FILE).write_text('bucket = "abc"\nendpoint_url = "https://evil.example"\n')
    git_config(repo_dir, settings.ACCEPTED_ENDPOINT_KEY, "https://minio.example")
    with pytest.raises(ConfigError, match=r"accepted https://minio\.example .*lfs-s3-agent install"):
        settings.load(cwd=repo_dir, env={})
    assert settings.load(cwd=repo_dir, env={}, accept_endpoint=True).values["endpoint_url"] == "https://evil.example"
    git_config(repo_dir, settings.ACCEPTED_ENDPOINT_KEY, "https://evil.example")
    assert settings.load(cwd=repo_dir, env={}).values["endpoint_url"] == "https://evil.example"


def test_control_characters_are_escaped_for_terminals() -> None:
    from lfs_s3_agent.errors import printable

    assert printable("key\x1b[31m\x9b\x07\tend\n") == "key\\x1b[31m\\u009b\\x07\tend\n"
    assert printable("a\nb", keep_newlines=False) == "a\\nb"


@pytest.mark.parametrize("url", ["http://host:9000/lfs", "https://host/bucket/prefix", "http://host:9000?x=1",
                                 "http://user:pw@host:9000"])
def test_an_endpoint_with_a_path_or_query_is_refused_with_the_fix(repo_dir: Path, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings.load({"bucket": "b1", "endpoint_url": url}, cwd=repo_dir)
    assert "endpoint_url" in info.value.message and "http(s)://host[:port]" in info.value.message


def test_a_settings_file_typo_gets_a_did_you_mean(repo_dir: Path) -> None:
    (repo_dir / ".lfs-s3-agent.toml").write_text('bucket = "b1"\nendpoint-url = "http://127.0.0.1:9000"\n')
    with pytest.raises(ConfigError) as info:
        settings.load(cwd=repo_dir)
    assert "did you mean endpoint_url?" in info.value.message
    assert "known:" not in info.value.message  # one suggestion, not a list of every name


def test_the_committed_file_is_read_from_head_when_it_is_not_checked_out(repo_dir: Path) -> None:
    import subprocess

    (repo_dir / ".lfs-s3-agent.toml").write_text('bucket = "from-head"\nprefix = "p"\n')
    subprocess.run(["git", "add", "."], cwd=repo_dir, check=True)
    subprocess.run(["git", "commit", "-qm", "settings"], cwd=repo_dir, check=True)
    (repo_dir / ".lfs-s3-agent.toml").unlink()
    resolved = settings.load(cwd=repo_dir)
    assert resolved.values["bucket"] == "from-head" and resolved.sources["bucket"] == ".lfs-s3-agent.toml"
    # the working-tree file wins when there is one
    (repo_dir / ".lfs-s3-agent.toml").write_text('bucket = "from-tree"\n')
    assert settings.load(cwd=repo_dir).values["bucket"] == "from-tree"
