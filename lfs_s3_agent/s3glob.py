"""S3 URLs and glob patterns over keys: ``s3://bucket/tiles/**/*.{laz,tif}``.

``*`` and ``?`` stay within one path segment, ``**`` crosses segments, ``[...]`` is a
character class and ``{a,b}`` lists alternatives. Listing starts from the longest
literal prefix so a pattern never scans more of a bucket than it must. Pure functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GLOB_CHARS = "*?[{"
#: Bucket names as S3 and the common S3-compatible stores accept them (3+ characters).
BUCKET_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,254}")


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); anything else is a ValueError naming the form."""
    if not url.startswith("s3://"):
        raise ValueError(f"{url!r} is not an S3 URL: use s3://BUCKET/KEY (other schemes are not accepted)")
    bucket, _, key = url[5:].partition("/")
    if not BUCKET_RE.fullmatch(bucket):
        raise ValueError(f"{url!r}: {bucket!r} is not a bucket name")
    return bucket, key


@dataclass(frozen=True)
class S3Pattern:
    """One pattern: the bucket, the literal prefix to list from, and a matcher for whole keys."""

    url: str
    bucket: str
    pattern: str  #: the key part, possibly with glob characters

    @classmethod
    def parse(cls, url: str) -> S3Pattern:
        bucket, key = parse_s3_url(url)
        return cls(url=url, bucket=bucket, pattern=key)

    @property
    def is_glob(self) -> bool:
        return any(c in self.pattern for c in _GLOB_CHARS)

    @property
    def is_prefix(self) -> bool:
        return not self.is_glob and (self.pattern == "" or self.pattern.endswith("/"))

    @property
    def list_prefix(self) -> str:
        """The longest literal prefix of the pattern: where listing starts."""
        cut = min((i for i, c in enumerate(self.pattern) if c in _GLOB_CHARS), default=len(self.pattern))
        return self.pattern[:cut]

    @property
    def base(self) -> str:
        """The directory part of the literal prefix: matched keys are placed relative to it."""
        if self.is_prefix:
            return self.pattern
        prefix = self.list_prefix if self.is_glob else self.pattern
        return prefix[: prefix.rfind("/") + 1]

    def relative(self, key: str) -> str:
        return key[len(self.base):]

    def matches(self, key: str) -> bool:
        if self.is_prefix:
            return key.startswith(self.pattern) and not key.endswith("/")
        if not self.is_glob:
            return key == self.pattern
        return _compile(self.pattern).fullmatch(key) is not None


def _compile(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    depth = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")  # zero or more whole segments
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                raise ValueError(f"unclosed '[' in pattern {pattern!r}")
            body = pattern[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
            continue
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
        i += 1
    if depth:
        raise ValueError(f"unclosed '{{' in pattern {pattern!r}")
    return re.compile("".join(out), re.DOTALL)
