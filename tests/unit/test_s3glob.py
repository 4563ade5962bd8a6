"""S3 URLs and glob patterns over keys (lfs_s3_agent.s3glob): pure functions, no S3."""

from __future__ import annotations

import pytest

from lfs_s3_agent.s3glob import S3Pattern, parse_s3_url


def matching(url: str, keys: list[str]) -> list[str]:
    pattern = S3Pattern.parse(url)
    return [key for key in keys if pattern.matches(key)]


KEYS = [
    "tiles/a.laz",
    "tiles/b.tif",
    "tiles/c.las",
    "tiles/t1.laz",
    "tiles/t2.laz",
    "tiles/t3.laz",
    "tiles/t10.laz",
    "tiles/sub/d.laz",
    "tiles/sub/deeper/e.tif",
    "tiles/",  # a "directory marker" object
    "tilesx/f.laz",
    "other/a.laz",
]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # `*` stays within one segment
        ("s3://survey/tiles/*.laz", ["tiles/a.laz", "tiles/t1.laz", "tiles/t2.laz", "tiles/t3.laz", "tiles/t10.laz"]),
        ("s3://survey/*/a.laz", ["tiles/a.laz", "other/a.laz"]),
        # `?` is exactly one character, never '/'
        ("s3://survey/tiles/t?.laz", ["tiles/t1.laz", "tiles/t2.laz", "tiles/t3.laz"]),
        ("s3://survey/tiles?a.laz", []),
        # character classes, ranges and negation
        ("s3://survey/tiles/t[12].laz", ["tiles/t1.laz", "tiles/t2.laz"]),
        ("s3://survey/tiles/t[2-3].laz", ["tiles/t2.laz", "tiles/t3.laz"]),
        ("s3://survey/tiles/t[!1].laz", ["tiles/t2.laz", "tiles/t3.laz"]),
        # `**` crosses segments, and `**/` also matches zero segments
        ("s3://survey/tiles/**/*.laz",
         ["tiles/a.laz", "tiles/t1.laz", "tiles/t2.laz", "tiles/t3.laz", "tiles/t10.laz", "tiles/sub/d.laz"]),
        ("s3://survey/tiles/**/*.tif", ["tiles/b.tif", "tiles/sub/deeper/e.tif"]),
        ("s3://survey/**/a.laz", ["tiles/a.laz", "other/a.laz"]),
        ("s3://survey/tiles/**/deeper/*", ["tiles/sub/deeper/e.tif"]),
        # `{a,b}` alternatives
        ("s3://survey/tiles/*.{laz,tif}",
         ["tiles/a.laz", "tiles/b.tif", "tiles/t1.laz", "tiles/t2.laz", "tiles/t3.laz", "tiles/t10.laz"]),
        ("s3://survey/tiles/**/*.{tif,las}", ["tiles/b.tif", "tiles/c.las", "tiles/sub/deeper/e.tif"]),
        ("s3://survey/{tiles,other}/a.laz", ["tiles/a.laz", "other/a.laz"]),
        # a plain key matches itself only
        ("s3://survey/tiles/a.laz", ["tiles/a.laz"]),
        ("s3://survey/tiles/a", []),
        # a prefix matches everything below it, but no directory marker and no sibling sharing the letters
        ("s3://survey/tiles/",
         ["tiles/a.laz", "tiles/b.tif", "tiles/c.las", "tiles/t1.laz", "tiles/t2.laz", "tiles/t3.laz",
          "tiles/t10.laz", "tiles/sub/d.laz", "tiles/sub/deeper/e.tif"]),
    ],
)
def test_matches(url: str, expected: list[str]) -> None:
    assert matching(url, KEYS) == expected


def test_whole_bucket_prefix() -> None:
    pattern = S3Pattern.parse("s3://survey/")
    assert pattern.is_prefix and not pattern.is_glob
    assert pattern.list_prefix == ""
    assert matching("s3://survey/", KEYS) == [k for k in KEYS if not k.endswith("/")]


def test_regex_characters_in_literals_are_literal() -> None:
    keys = ["data/a+b (1).laz", "data/aab (1).laz", "data/a+b (1)xlaz", "data/a+b 1.laz"]
    assert matching("s3://survey/data/a+b (1).laz", keys) == ["data/a+b (1).laz"]
    assert matching("s3://survey/data/a+b*.laz", keys) == ["data/a+b (1).laz", "data/a+b 1.laz"]
    assert matching("s3://survey/data/*(1).laz", keys) == ["data/a+b (1).laz", "data/aab (1).laz"]


def test_matching_is_on_whole_keys() -> None:
    assert matching("s3://survey/tiles/*.laz", ["tiles/a.laz.bak", "xtiles/a.laz", "tiles/a.laz"]) == ["tiles/a.laz"]


def test_non_ascii_and_spaces() -> None:
    keys = ["données/é t/ü.laz", "données/é t/ü.tif"]
    assert matching("s3://survey/données/**/*.laz", keys) == ["données/é t/ü.laz"]


@pytest.mark.parametrize(
    ("url", "is_glob", "is_prefix", "list_prefix", "base"),
    [
        ("s3://b-1/tiles/*.laz", True, False, "tiles/", "tiles/"),
        ("s3://b-1/tiles/2023*/x.laz", True, False, "tiles/2023", "tiles/"),
        ("s3://b-1/tiles/**/*.laz", True, False, "tiles/", "tiles/"),
        ("s3://b-1/a/b/t?.laz", True, False, "a/b/t", "a/b/"),
        ("s3://b-1/a/[xy]/f", True, False, "a/", "a/"),
        ("s3://b-1/a/{x,y}/f", True, False, "a/", "a/"),
        ("s3://b-1/*.laz", True, False, "", ""),
        ("s3://b-1/tiles/a.laz", False, False, "tiles/a.laz", "tiles/"),
        ("s3://b-1/a.laz", False, False, "a.laz", ""),
        ("s3://b-1/tiles/", False, True, "tiles/", "tiles/"),
        ("s3://b-1/tiles/sub/", False, True, "tiles/sub/", "tiles/sub/"),
        ("s3://b-1", False, True, "", ""),
    ],
)
def test_pattern_anatomy(url: str, is_glob: bool, is_prefix: bool, list_prefix: str, base: str) -> None:
    pattern = S3Pattern.parse(url)
    assert pattern.bucket == "b-1"
    assert (pattern.is_glob, pattern.is_prefix, pattern.list_prefix, pattern.base) == (
        is_glob, is_prefix, list_prefix, base)


@pytest.mark.parametrize(
    ("url", "key", "relative"),
    [
        ("s3://survey/tiles/*.laz", "tiles/a.laz", "a.laz"),
        ("s3://survey/tiles/**/*.laz", "tiles/sub/d.laz", "sub/d.laz"),
        ("s3://survey/tiles/2023*/x.laz", "tiles/2023-01/x.laz", "2023-01/x.laz"),
        ("s3://survey/tiles/", "tiles/sub/deeper/e.tif", "sub/deeper/e.tif"),
        ("s3://survey/tiles/a.laz", "tiles/a.laz", "a.laz"),
        ("s3://survey/a.laz", "a.laz", "a.laz"),
        ("s3://survey/*/a.laz", "other/a.laz", "other/a.laz"),
    ],
)
def test_relative_mirrors_the_layout_below_the_literal_prefix(url: str, key: str, relative: str) -> None:
    pattern = S3Pattern.parse(url)
    assert pattern.matches(key)
    assert pattern.relative(key) == relative


def test_list_prefix_is_a_prefix_of_every_match() -> None:
    for url in ("s3://survey/tiles/t?.laz", "s3://survey/tiles/**/*.tif", "s3://survey/{tiles,other}/a.laz",
                "s3://survey/tiles/t[12].laz", "s3://survey/tiles/"):
        pattern = S3Pattern.parse(url)
        for key in KEYS:
            if pattern.matches(key):
                assert key.startswith(pattern.list_prefix), (url, key)


@pytest.mark.parametrize("url", ["s3://survey/tiles/t[12.laz", "s3://survey/tiles/*.{laz,tif"])
def test_unclosed_glob_syntax_is_an_error(url: str) -> None:
    pattern = S3Pattern.parse(url)
    with pytest.raises(ValueError, match="unclosed"):
        pattern.matches("tiles/t1.laz")


@pytest.mark.parametrize(
    ("url", "bucket", "key"),
    [
        ("s3://survey/tiles/a.laz", "survey", "tiles/a.laz"),
        ("s3://survey", "survey", ""),
        ("s3://survey/", "survey", ""),
        ("s3://my.dotted-bucket_1/k", "my.dotted-bucket_1", "k"),
        ("s3://survey/a//b", "survey", "a//b"),
    ],
)
def test_parse_s3_url(url: str, bucket: str, key: str) -> None:
    assert parse_s3_url(url) == (bucket, key)


@pytest.mark.parametrize(
    "url",
    [
        "https://survey.s3.amazonaws.com/tiles/a.laz",
        "gs://survey/tiles/a.laz",
        "s3a://survey/tiles/a.laz",
        "S3://survey/tiles/a.laz",
        "survey/tiles/a.laz",
        "/tiles/a.laz",
        "s3:/survey/tiles",
        "file:///tmp/x",
        "",
    ],
)
def test_parse_s3_url_rejects_other_schemes(url: str) -> None:
    with pytest.raises(ValueError, match=r"s3://BUCKET/KEY"):
        parse_s3_url(url)
    with pytest.raises(ValueError):
        S3Pattern.parse(url)


@pytest.mark.parametrize("url", ["s3:///key", "s3://ab/key", "s3://-bad/key", "s3://bad bucket/key", "s3://a*b/k"])
def test_parse_s3_url_rejects_bad_bucket_names(url: str) -> None:
    with pytest.raises(ValueError, match="not a bucket name"):
        parse_s3_url(url)
