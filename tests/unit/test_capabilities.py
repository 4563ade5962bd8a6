"""Store capabilities (issue 13): the upload policy they imply, their cache, and the S3 layer's header rules."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

from lfs_s3_agent.errors import CHECKSUM_HEADERS_REJECTED, CONTENT_MD5_REQUIRED
from lfs_s3_agent.s3.capabilities import (
    AFTER_BODY,
    BEFORE_BODY,
    HEAD_FIRST_ABOVE,
    IGNORED,
    MAX_AGE,
    Capabilities,
    CapabilityCache,
    fingerprint,
)
from lfs_s3_agent.s3.client import ClientSpec, S3Client
from lfs_s3_agent.s3.errors import translate


@pytest.mark.parametrize(("inm", "small", "large"), [(BEFORE_BODY, False, False), (AFTER_BODY, False, True),
                                                      (IGNORED, True, True)])
def test_head_first_follows_what_the_store_does_with_if_none_match(inm: str, small: bool, large: bool) -> None:
    caps = Capabilities(if_none_match=inm)
    assert caps.head_first(HEAD_FIRST_ABOVE) is small
    assert caps.head_first(HEAD_FIRST_ABOVE + 1) is large


def test_cache_keeps_answers_per_store_for_a_day(tmp_path: Path) -> None:
    cache = CapabilityCache(tmp_path / "sub" / "capabilities.json")
    assert cache.get("k") is None  # no file: an empty cache
    caps = Capabilities(if_none_match=IGNORED, keeps_checksums=False, probed_at=1000.0)
    cache.put("k", caps)
    cache.put("other", Capabilities(probed_at=1000.0))
    assert cache.get("k", now=1000.0 + MAX_AGE - 1) == caps
    assert cache.get("k", now=1000.0 + MAX_AGE + 1) is None, "a day-old answer is asked again"
    assert set(json.loads(cache.path.read_text())) == {"k", "other"}
    assert list(cache.path.parent.iterdir()) == [cache.path], "no temporary file left"


@pytest.mark.parametrize("text", ["not json", "[]", '{"k": 3}', '{"k": {"if_none_match": "sometimes"}}',
                                  '{"k": {"if_none_match": "ignored", "probed_at": "x"}}'])
def test_a_damaged_cache_is_no_answer(tmp_path: Path, text: str) -> None:
    path = tmp_path / "capabilities.json"
    path.write_text(text)
    assert CapabilityCache(path).get("k", now=0.0) is None


def test_fingerprint_changes_with_what_the_answers_depend_on() -> None:
    base: dict[str, Any] = {"endpoint": "http://x", "region": None, "bucket": "b", "prefix": "p", "sse": "none",
                            "sse_kms_key_id": None, "checksums": "when_supported"}
    seen = {fingerprint(**base)}
    for name, value in [("endpoint", None), ("bucket", "c"), ("prefix", "q"), ("sse", "AES256"),
                        ("checksums", "none"), ("region", "eu-west-1")]:
        seen.add(fingerprint(**{**base, name: value}))
    assert len(seen) == 7


def _client_error(code: str, message: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize(("code", "message", "expected"), [
    ("InvalidArgument", "Unsupported header 'x-amz-checksum-sha256' received for this API call.",
     CHECKSUM_HEADERS_REJECTED),
    ("NotImplemented", "x-amz-checksum-crc32 is not supported", CHECKSUM_HEADERS_REJECTED),
    ("MissingContentMD5", "Missing required header for this request: Content-MD5", CONTENT_MD5_REQUIRED),
    ("InvalidRequest", "Missing required header for this request: Content-MD5", CONTENT_MD5_REQUIRED),
    # A wrong checksum value is corrupt bytes, not a store that refuses the header.
    ("InvalidRequest", "Value for x-amz-checksum-sha256 header is invalid.", None),
    ("BadDigest", "The SHA256 you specified did not match the calculated checksum.", None),
    ("InvalidArgument", "Invalid argument.", None),
])
def test_translate_names_the_store_difference(code: str, message: str, expected: str | None) -> None:
    assert translate(_client_error(code, message), bucket="b", key="k").incompatible == expected


def _request(op: str, body: bytes, headers: dict[str, str]) -> AWSRequest:
    return AWSRequest(method="POST", url="http://x/b", data=body, headers=headers)


def test_delete_objects_always_carries_content_md5() -> None:
    client = S3Client(raw=None, spec=ClientSpec())
    body = b"<Delete><Object><Key>k</Key></Object></Delete>"
    request = _request("DeleteObjects", body, {"x-amz-checksum-crc32": "AAAAAA=="})
    client.adjust_headers(request, operation_name="DeleteObjects")
    assert request.headers["Content-MD5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    assert request.headers["x-amz-checksum-crc32"] == "AAAAAA==", "S3 takes both; only a store that refuses loses it"


def test_no_checksum_headers_where_the_store_refuses_them() -> None:
    client = S3Client(raw=None, spec=ClientSpec(checksums="none"))
    assert client.checksum_headers is False
    put = _request("PutObject", b"data", {"x-amz-checksum-sha256": "abc", "x-amz-sdk-checksum-algorithm": "SHA256",
                                          "X-Amz-Checksum-Mode": "ENABLED", "Content-Type": "x"})
    client.adjust_headers(put, operation_name="PutObject")
    assert dict(put.headers) == {"Content-Type": "x"}
    delete = _request("DeleteObjects", b"<Delete/>", {"x-amz-checksum-crc32": "AAAAAA=="})
    client.adjust_headers(delete, operation_name="DeleteObjects")
    assert "x-amz-checksum-crc32" not in delete.headers and "Content-MD5" in delete.headers
