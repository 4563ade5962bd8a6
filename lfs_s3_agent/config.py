"""The typed settings model the store and the commands use.

``settings.load`` gathers and checks the raw values (standard library, so the
agent can answer init before importing pydantic); this model is the typed,
immutable result, with where each value came from. Its Literal choices must match
``settings.FIELDS`` (a unit test holds them together).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lfs_s3_agent import settings as settings_mod

StorageClass = Literal[
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
    "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "OUTPOSTS", "SNOW", "EXPRESS_ONEZONE",
]


class Settings(BaseModel):
    """Resolved lfs-s3-agent settings. Credentials are deliberately absent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    checksums: Literal["when_supported", "when_required"] = "when_supported"
    sse: Literal["none", "AES256", "aws:kms"] = "none"
    sse_kms_key_id: str | None = None
    storage_class: StorageClass | None = None
    multipart_threshold: int = Field(default=16 << 20, ge=5 << 20, le=5 << 30)
    part_size: int = Field(default=8 << 20, ge=5 << 20, le=5 << 30)
    concurrency: int = Field(default=8, ge=1, le=64)
    stale_upload_days: int = Field(default=7, ge=0, le=3650)
    head_before_put: Literal["false", "true"] = "false"
    ca_bundle: str | None = None
    tls_verify: Literal["true", "false"] = "true"
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout: int = Field(default=60, ge=1, le=3600)
    shared_worker: Literal["true", "false"] = "true"
    worker_idle: int = Field(default=60, ge=1, le=86400)
    #: where each value came from ("flag --bucket", "env LFS_S3_BUCKET", "default"...)
    sources: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    @classmethod
    def from_resolved(cls, resolved: settings_mod.Resolved) -> Settings:
        return cls(**resolved.values, sources=resolved.sources)

    @classmethod
    def load(cls, flags: Mapping[str, Any] | None = None, *, cwd: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None) -> Settings:
        return cls.from_resolved(settings_mod.load(flags, cwd=cwd, env=env))

    def describe(self) -> str:
        """Where the objects live, for messages: ``s3://bucket/prefix (endpoint ...)``."""
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where
