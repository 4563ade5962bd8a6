"""Git LFS pointer files as a value type: parse, validate and format (after git-lfs's lfs/pointer.go).

Only ``version``, ``oid sha256:<64 hex>``, ``size`` and ``ext-N-name`` lines are valid: any
other key (a ``url``, say) makes git-lfs 3.x treat the file as ordinary content, so
storage locations never go into pointers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VERSION = "https://git-lfs.github.com/spec/v1"
MAX_POINTER_SIZE = 1024  #: git-lfs does not look for pointers in larger blobs

_OID = re.compile(r"[0-9a-f]{64}")
_POINTER = re.compile(
    rb"version https://git-lfs\.github\.com/spec/v1\n"
    rb"(?:ext-\d-\w+ sha256:[0-9a-f]{64}\n)*"
    rb"oid sha256:(?P<oid>[0-9a-f]{64})\n"
    rb"size (?P<size>0|[1-9]\d*)\n"
)


def is_oid(value: str) -> bool:
    return bool(_OID.fullmatch(value))


@dataclass(frozen=True)
class Pointer:
    oid: str
    size: int

    def __post_init__(self) -> None:
        if not is_oid(self.oid):
            raise ValueError(f"not a SHA-256 oid: {self.oid!r}")
        if self.size < 0:
            raise ValueError(f"negative size: {self.size}")

    def encode(self) -> bytes:
        return f"version {VERSION}\noid sha256:{self.oid}\nsize {self.size}\n".encode("ascii")

    @classmethod
    def decode(cls, data: bytes) -> Pointer | None:
        """The pointer in ``data``, or None when it is not a valid git-lfs pointer."""
        if len(data) > MAX_POINTER_SIZE:
            return None
        match = _POINTER.fullmatch(data)
        if match is None:
            return None
        return cls(oid=match["oid"].decode(), size=int(match["size"]))
