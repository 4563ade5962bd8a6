"""Typed git-lfs custom-transfer messages: one pydantic model per wire message.

Requests are validated strictly (an oid is 64 lowercase hex digits, a size is a
non-negative integer, not a string or a bool) and failures become ``BadRequest``
with a short, field-by-field message. The init handshake is not here: it is
answered with the standard library alone (see ``protocol.lfs``) because
git-lfs waits for each spawned agent's init reply in turn, and importing
pydantic costs about 100 ms.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError

from lfs_s3_agent.errors import BadRequest, Code

OID_PATTERN = r"^[0-9a-f]{64}$"

Oid = Annotated[StrictStr, Field(pattern=OID_PATTERN)]
Size = Annotated[StrictInt, Field(ge=0)]


class _Message(BaseModel):
    # git-lfs may add fields in later versions; unknown fields are ignored.
    model_config = ConfigDict(extra="ignore", frozen=True)


class UploadRequest(_Message):
    event: Literal["upload"]
    oid: Oid
    size: Size
    path: Annotated[StrictStr, Field(min_length=1)]
    action: dict[str, Any] | None = None


class DownloadRequest(_Message):
    event: Literal["download"]
    oid: Oid
    size: Size
    action: dict[str, Any] | None = None


class TerminateRequest(_Message):
    event: Literal["terminate"]


Request = Annotated[UploadRequest | DownloadRequest | TerminateRequest, Field(discriminator="event")]

_REQUEST = TypeAdapter(Request)


class ErrorBody(_Message):
    code: int
    message: str


class ProgressEvent(_Message):
    event: Literal["progress"] = "progress"
    oid: str
    bytesSoFar: int  # noqa: N815 - wire field name
    bytesSinceLast: int  # noqa: N815 - wire field name


class CompleteEvent(_Message):
    event: Literal["complete"] = "complete"
    oid: str
    path: str | None = None
    error: ErrorBody | None = None

    @classmethod
    def failed(cls, oid: str, code: Code | int, message: str) -> CompleteEvent:
        return cls(oid=oid, error=ErrorBody(code=int(code), message=message))


def encode(message: _Message) -> dict[str, Any]:
    """The JSON object for a response model, without unset optional fields."""
    return message.model_dump(mode="json", exclude_none=True)


_FIELD_HINTS = {
    "oid": "must be 64 lowercase hex digits (a SHA-256)",
    "size": "must be a non-negative integer",
    "path": "must be a non-empty string",
}


def parse_request(raw: dict[str, Any]) -> UploadRequest | DownloadRequest | TerminateRequest:
    """Validate one decoded request, or raise ``BadRequest`` naming every bad field."""
    event = raw.get("event")
    if event not in ("upload", "download", "terminate"):
        raise BadRequest(
            f"unknown event {event!r}: expected upload, download or terminate", oid=_echo_oid(raw)
        )
    try:
        return _REQUEST.validate_python(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err["loc"][1:]) or "request"
            hint = _FIELD_HINTS.get(field, err["msg"].lower())
            if err["type"] == "missing":
                hint = "is missing"
            given = "" if err["type"] == "missing" else f" (got {_shorten(err.get('input'))})"
            problems.append(f"{field} {hint}{given}")
        raise BadRequest(f"invalid {event} request: " + "; ".join(problems), oid=_echo_oid(raw)) from None


def _echo_oid(raw: dict[str, Any]) -> str | None:
    """The oid to answer with: git-lfs matches ``complete`` to its request by this string."""
    oid = raw.get("oid")
    return oid if isinstance(oid, str) and oid else None


def _shorten(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
