"""What an agent and the shared worker say to each other over the unix socket (standard library only).

Every line is one JSON object, a *frame*. The agent opens with a ``Hello`` (a session for its
configuration key, or a control command), the worker answers ``HelloReply``. Then:

- agent -> worker: ``{"lfs": "<a git-lfs request line>"}`` (the line travels as a string, so
  no request can ever be read as anything else) or ``{"tmp": {"oid": .., "path": ..}}`` (the
  temporary file the agent made for its next download);
- worker -> agent: ``{"lfs": {<a git-lfs event>}}`` or ``{"log": {"level": .., "message": ..}}``.

``decode`` turns a line into one of these types or raises ``FrameError``. Frames are named tuples,
not dataclasses: the thin relay imports this module in every agent that gets a small object, and
``dataclasses`` (with ``inspect``) cost it ~25 ms of its ~60.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

#: The greeting both ends check first; bump the number when the framing changes.
HELLO = "lfs-s3-agent-worker/2"


class FrameError(ValueError):
    """A line that is not a frame of this protocol."""


class Hello(NamedTuple):
    key: str = ""  #: the configuration the agent wants served (a session)
    control: str = ""  #: or a control command: "status" or "stop"


class HelloReply(NamedTuple):
    ok: bool
    pid: int = 0
    error: str = ""
    extra: dict[str, Any] | None = None  #: a control command's answer (status)


class Request(NamedTuple):
    """A git-lfs request line, relayed as it was received."""

    line: bytes


class TmpFile(NamedTuple):
    """The temporary file the agent made for its next download of ``oid``."""

    oid: str
    path: str


class Event(NamedTuple):
    """A git-lfs event (progress or complete) for the agent to pass on."""

    message: dict[str, Any]


class Log(NamedTuple):
    level: int
    message: str


Frame = Hello | HelloReply | Request | TmpFile | Event | Log


def encode(frame: Frame) -> bytes:
    """One newline-terminated line for a frame."""
    body: dict[str, Any]
    if isinstance(frame, Hello):
        body = {"hello": HELLO, **({"key": frame.key} if frame.key else {}),
                **({"control": frame.control} if frame.control else {})}
    elif isinstance(frame, HelloReply):
        body = {"hello": "ok" if frame.ok else "refused", "pid": frame.pid, **({"error": frame.error} if frame.error
                                                                               else {}), **(frame.extra or {})}
    elif isinstance(frame, Request):
        body = {"lfs": frame.line.decode("utf-8", "surrogateescape")}
    elif isinstance(frame, TmpFile):
        body = {"tmp": {"oid": frame.oid, "path": frame.path}}
    elif isinstance(frame, Event):
        body = {"lfs": frame.message}
    else:
        body = {"log": {"level": frame.level, "message": frame.message}}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def _load(line: bytes) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"not a frame: {str(exc)[:100]}") from None
    if not isinstance(value, dict):
        raise FrameError("not a frame: not a JSON object")
    return value


def decode_hello(line: bytes) -> Hello:
    raw = _load(line)
    if raw.get("hello") != HELLO:
        raise FrameError(f"expected greeting {HELLO}")
    key, control = raw.get("key", ""), raw.get("control", "")
    if not isinstance(key, str) or not isinstance(control, str):
        raise FrameError("malformed greeting")
    return Hello(key=key, control=control)


def decode_reply(line: bytes) -> HelloReply:
    raw = _load(line)
    if raw.get("hello") not in ("ok", "refused"):
        raise FrameError(f"unexpected greeting reply: {line[:200]!r}")
    pid = raw.pop("pid", 0)
    error = raw.pop("error", "")
    ok = raw.pop("hello") == "ok"
    return HelloReply(ok=ok, pid=pid if isinstance(pid, int) else 0, error=str(error), extra=raw or None)


def decode_to_worker(line: bytes) -> Request | TmpFile:
    """A frame an agent sent after its greeting."""
    raw = _load(line)
    if isinstance(raw.get("lfs"), str) and len(raw) == 1:
        return Request(raw["lfs"].encode("utf-8", "surrogateescape"))
    tmp = raw.get("tmp")
    if isinstance(tmp, dict) and isinstance(tmp.get("oid"), str) and isinstance(tmp.get("path"), str):
        return TmpFile(tmp["oid"], tmp["path"])
    raise FrameError(f"unexpected frame from an agent: {line[:200]!r}")


def decode_to_agent(line: bytes) -> Event | Log:
    """A frame the worker sent after its greeting reply."""
    raw = _load(line)
    if isinstance(raw.get("lfs"), dict):
        return Event(raw["lfs"])
    log = raw.get("log")
    if isinstance(log, dict):
        level = log.get("level")
        return Log(level if isinstance(level, int) else 20, str(log.get("message", "")))
    raise FrameError(f"unexpected frame from the worker: {line[:200]!r}")
