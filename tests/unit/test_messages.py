import pytest

from lfs_s3_agent.errors import BadRequest, Code
from lfs_s3_agent.protocol.messages import (
    CompleteEvent,
    DownloadRequest,
    ProgressEvent,
    TerminateRequest,
    UploadRequest,
    encode,
    parse_request,
)

OID = "a" * 64


def test_parses_each_request_kind() -> None:
    up = parse_request({"event": "upload", "oid": OID, "size": 3, "path": "/x", "action": None})
    assert isinstance(up, UploadRequest) and up.size == 3 and up.path == "/x"
    down = parse_request({"event": "download", "oid": OID, "size": 0, "action": None, "future": 1})
    assert isinstance(down, DownloadRequest)
    assert isinstance(parse_request({"event": "terminate"}), TerminateRequest)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"event": "upload", "oid": "../../etc/passwd", "size": 1, "path": "/x"}, "oid must be 64 lowercase hex"),
        ({"event": "upload", "oid": "A" * 64, "size": 1, "path": "/x"}, "oid must be 64 lowercase hex"),
        ({"event": "upload", "oid": OID + "0", "size": 1, "path": "/x"}, "oid must be 64 lowercase hex"),
        ({"event": "upload", "oid": OID, "size": -1, "path": "/x"}, "size must be a non-negative integer"),
        ({"event": "upload", "oid": OID, "size": "12", "path": "/x"}, "size must be a non-negative integer"),
        ({"event": "upload", "oid": OID, "size": True, "path": "/x"}, "size must be a non-negative integer"),
        ({"event": "upload", "oid": OID, "size": 1}, "path is missing"),
        ({"event": "upload", "oid": OID, "size": 1, "path": ""}, "path must be a non-empty string"),
        ({"event": "download", "oid": OID}, "size is missing"),
        ({"event": "download", "size": 1}, "oid is missing"),
    ],
)
def test_rejects_bad_fields_by_name(raw: dict[str, object], fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment) as info:
        parse_request(raw)
    assert info.value.code == Code.BAD_REQUEST


def test_error_echoes_the_oid_string_so_git_lfs_can_match_it() -> None:
    with pytest.raises(BadRequest) as info:
        parse_request({"event": "upload", "oid": "../../x", "size": 1, "path": "/x"})
    assert info.value.oid == "../../x"
    with pytest.raises(BadRequest) as info:
        parse_request({"event": "upload", "oid": 7, "size": 1, "path": "/x"})
    assert info.value.oid is None


def test_unknown_event_is_named() -> None:
    with pytest.raises(BadRequest, match="unknown event 'bogus'") as info:
        parse_request({"event": "bogus", "oid": OID})
    assert info.value.oid == OID


def test_encodes_wire_shapes_exactly() -> None:
    assert encode(ProgressEvent(oid=OID, bytesSoFar=5, bytesSinceLast=2)) == {
        "event": "progress", "oid": OID, "bytesSoFar": 5, "bytesSinceLast": 2}
    assert encode(CompleteEvent(oid=OID, path="/tmp/f")) == {"event": "complete", "oid": OID, "path": "/tmp/f"}
    assert encode(CompleteEvent(oid=OID)) == {"event": "complete", "oid": OID}
    assert encode(CompleteEvent.failed(OID, Code.NOT_FOUND, "gone")) == {
        "event": "complete", "oid": OID, "error": {"code": 43, "message": "gone"}}
