"""The store's key layout, both ways (standard library only).

Objects are content-addressed: ``<prefix>/<oid[0:2]>/<oid[2:4]>/<oid>``; link records (a
linked object's original, instead of its bytes) live at
``<prefix>/links/<oid[0:2]>/<oid[2:4]>/<oid>.json``. Anything else under the prefix is a
*foreign key*: listed, counted, never deleted or copied. Keep markers
(``<prefix>/keep/<oid[0:2]>/<oid[2:4]>/<oid>``, empty) protect an object a push relies on from a
concurrent ``gc``.
"""

from __future__ import annotations

import base64
import hashlib
import re

_OBJECT_KEY = re.compile(r"([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})")
_LINK_KEY = re.compile(r"links/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})\.json")
_KEEP_KEY = re.compile(r"keep/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})")


def object_key(prefix: str, oid: str) -> str:
    """The content-addressed key of an oid under a prefix."""
    tail = f"{oid[0:2]}/{oid[2:4]}/{oid}"
    return f"{prefix}/{tail}" if prefix else tail


def link_key(prefix: str, oid: str) -> str:
    """The key of an oid's link record under a prefix."""
    tail = f"links/{oid[0:2]}/{oid[2:4]}/{oid}.json"
    return f"{prefix}/{tail}" if prefix else tail


def keep_key(prefix: str, oid: str) -> str:
    """The key of an oid's keep marker: written by a push that relies on the object being stored (it skips
    the upload), so that a concurrent ``gc`` keeps the object (see ``store.S3Store.protect``)."""
    tail = f"keep/{oid[0:2]}/{oid[2:4]}/{oid}"
    return f"{prefix}/{tail}" if prefix else tail


def keep_prefix(prefix: str) -> str:
    """Where the keep markers are listed."""
    return f"{list_prefix(prefix)}keep/"


def list_prefix(prefix: str) -> str:
    """What to list for a prefix: ``prefix/`` (never a sibling like ``prefix-other/``), or the bucket."""
    return f"{prefix}/" if prefix else ""


def classify(prefix: str, key: str) -> tuple[str, str] | None:
    """``("stored"|"linked"|"keep", oid)`` for a key in our layout under the prefix, else None."""
    base = list_prefix(prefix)
    if not key.startswith(base):
        return None
    rel = key[len(base):]
    for kind, pattern in (("stored", _OBJECT_KEY), ("linked", _LINK_KEY), ("keep", _KEEP_KEY)):
        match = pattern.fullmatch(rel)
        if match and match[3][0:2] == match[1] and match[3][2:4] == match[2]:
            return kind, match[3]
    return None


def checksum_of(oid: str) -> str:
    """The ``x-amz-checksum-sha256`` value (base64 of the digest) for an oid."""
    return base64.b64encode(bytes.fromhex(oid)).decode("ascii")


def b64sha256(data: bytes | bytearray | memoryview) -> str:
    """The ``x-amz-checksum-sha256`` value of some bytes."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")
