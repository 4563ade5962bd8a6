"""git-lfs's custom-transfer handshake and event names, with the standard library alone.

git-lfs starts up to ``lfs.concurrenttransfers`` agents one after another and waits for each
one's init reply before it starts the next, so the init request is parsed and answered here
without pydantic (nor ``dataclasses``: the thin relay imports this too). Source: git-lfs
``docs/custom-transfers.md`` and ``tq/custom.go``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lfs_s3_agent.errors import BadRequest

INIT = "init"
UPLOAD = "upload"
DOWNLOAD = "download"
TERMINATE = "terminate"
TRANSFER_EVENTS = (UPLOAD, DOWNLOAD)


class InitRequest(NamedTuple):
    """``{"event":"init","operation":...,"remote":...,"concurrent":...,"concurrenttransfers":...}``."""

    operation: str
    remote: str = ""
    concurrent: bool = True
    concurrenttransfers: int = 1

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> InitRequest:
        operation = raw.get("operation")
        if operation not in (UPLOAD, DOWNLOAD):
            raise BadRequest(f"invalid init request: operation must be upload or download (got {operation!r})")
        remote = raw.get("remote", "")
        transfers = raw.get("concurrenttransfers", 1)
        if not isinstance(transfers, int) or isinstance(transfers, bool) or transfers < 1:
            transfers = 1
        return cls(operation=operation, remote=remote if isinstance(remote, str) else "",
                   concurrent=bool(raw.get("concurrent", True)), concurrenttransfers=transfers)


def error_reply(code: int, message: str) -> dict[str, Any]:
    """An init reply that fails the git command: ``{"error":{"code":..,"message":..}}``."""
    return {"error": {"code": int(code), "message": message}}


INIT_OK: dict[str, Any] = {}
