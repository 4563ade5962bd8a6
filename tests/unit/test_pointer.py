"""Git LFS pointer files (lfs_s3_agent.pointer): exactly the lines git-lfs 3.x accepts."""

from __future__ import annotations

import hashlib

import pytest

from lfs_s3_agent.pointer import MAX_POINTER_SIZE, Pointer, is_oid

OID = hashlib.sha256(b"hello").hexdigest()
VERSION_LINE = b"version https://git-lfs.github.com/spec/v1\n"


def pointer_bytes(*lines: str) -> bytes:
    return VERSION_LINE + "".join(line + "\n" for line in lines).encode()


def test_encode_is_the_standard_three_line_pointer() -> None:
    assert Pointer(OID, 5).encode() == (
        b"version https://git-lfs.github.com/spec/v1\n"
        b"oid sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n"
        b"size 5\n"
    )


@pytest.mark.parametrize("size", [0, 1, 5, 10**12, 5 * 1024**4])
def test_round_trip(size: int) -> None:
    data = Pointer(OID, size).encode()
    assert Pointer.decode(data) == Pointer(OID, size)


def test_decode_reads_what_git_lfs_writes() -> None:
    assert Pointer.decode(pointer_bytes(f"oid sha256:{OID}", "size 12345")) == Pointer(OID, 12345)


def test_decode_accepts_extension_lines_before_the_oid() -> None:
    other = hashlib.sha256(b"x").hexdigest()
    data = pointer_bytes(f"ext-0-foo sha256:{other}", f"ext-1-bar sha256:{other}", f"oid sha256:{OID}", "size 7")
    assert Pointer.decode(data) == Pointer(OID, 7)


@pytest.mark.parametrize(
    "data",
    [
        # an extra key, e.g. a storage URL: git-lfs 3.x treats such a file as ordinary content
        pointer_bytes(f"oid sha256:{OID}", "size 5", "url s3://survey/tiles/a.laz"),
        pointer_bytes("url s3://survey/tiles/a.laz", f"oid sha256:{OID}", "size 5"),
        pointer_bytes(f"oid sha256:{OID}", "url s3://survey/tiles/a.laz", "size 5"),
        pointer_bytes(f"oid sha256:{OID}", "size 5", "x-bucket survey"),
        # wrong order, missing lines, wrong version
        pointer_bytes("size 5", f"oid sha256:{OID}"),
        pointer_bytes(f"oid sha256:{OID}"),
        pointer_bytes("size 5"),
        f"oid sha256:{OID}\nsize 5\n".encode(),
        f"version https://git-lfs.github.com/spec/v2\noid sha256:{OID}\nsize 5\n".encode(),
        # malformed oid or size
        pointer_bytes(f"oid sha256:{OID.upper()}", "size 5"),
        pointer_bytes(f"oid sha256:{OID[:-1]}", "size 5"),
        pointer_bytes(f"oid sha256:{OID}0", "size 5"),
        pointer_bytes(f"oid md5:{OID}", "size 5"),
        pointer_bytes(f"oid sha256:{OID}", "size -5"),
        pointer_bytes(f"oid sha256:{OID}", "size 05"),
        pointer_bytes(f"oid sha256:{OID}", "size 5.0"),
        pointer_bytes(f"oid sha256:{OID}", "size"),
        # line endings and trailing content
        pointer_bytes(f"oid sha256:{OID}", "size 5")[:-1],
        pointer_bytes(f"oid sha256:{OID}", "size 5") + b"\n",
        pointer_bytes(f"oid sha256:{OID}", "size 5") + b"trailing",
        b" " + pointer_bytes(f"oid sha256:{OID}", "size 5"),
        # not a pointer at all
        b"",
        b"\x00\x01binary",
        b"hello\n",
    ],
)
def test_decode_refuses_anything_git_lfs_would_not_call_a_pointer(data: bytes) -> None:
    assert Pointer.decode(data) is None


def test_oversized_data_is_never_a_pointer() -> None:
    # Every line is in the pointer grammar, but git-lfs does not look at blobs this large.
    data = pointer_bytes(f"ext-0-{'a' * 1000} sha256:{OID}", f"oid sha256:{OID}", "size 5")
    assert len(data) > MAX_POINTER_SIZE
    assert Pointer.decode(data) is None
    # the same shape under the limit is accepted, so it is the size that was refused
    small = pointer_bytes(f"ext-0-{'a' * 10} sha256:{OID}", f"oid sha256:{OID}", "size 5")
    assert Pointer.decode(small) == Pointer(OID, 5)


def test_max_pointer_size_is_git_lfs_limit() -> None:
    assert MAX_POINTER_SIZE == 1024


@pytest.mark.parametrize("oid", ["", "abc", OID.upper(), OID[:-1], OID + "0", "g" * 64, f"sha256:{OID}"])
def test_invalid_oids_are_refused(oid: str) -> None:
    assert not is_oid(oid)
    with pytest.raises(ValueError, match="not a SHA-256 oid"):
        Pointer(oid, 1)


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="negative size"):
        Pointer(OID, -1)


def test_pointers_are_values() -> None:
    assert Pointer(OID, 5) == Pointer(OID, 5)
    assert len({Pointer(OID, 5), Pointer(OID, 5), Pointer(OID, 6)}) == 2
