"""Reaching S3: where a bucket lives and how (:class:`S3Config`: endpoint, credentials, encryption,
retries), and the two clients built from it, cached per process: boto3 for listing, checksums,
copies and every write (only boto3 asks for server-side encryption), pyarrow's S3 filesystem for
reading. Both retry throttling and 5xx answers a bounded number of times with exponential backoff
(``XFORCE_S3_MAX_ATTEMPTS``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from xforce.errors import ConfigError


# ---------------------------------------------------------------------------------- S3 settings
@dataclass(frozen=True)
class S3Config:
    """Where an S3 zone lives and how to reach it: endpoint, credentials, encryption, retries.

    ``None`` credentials mean "the standard AWS chain" (``AWS_ACCESS_KEY_ID`` ..., config files,
    instance roles), resolved by boto3 and pyarrow themselves. Secrets never appear in ``repr``.
    """

    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    sse: str = "AES256"  # AES256 | aws:kms
    sse_kms_key_id: str | None = None
    max_attempts: int = 5
    source: str = "environment"  # for messages: "environment" or "connection <id>"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> S3Config:
        """The standard AWS settings as boto3 reads them, plus the hub's ``XFORCE_S3_*`` policy."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return (env.get(name) or "").strip() or None

        return cls(
            endpoint_url=get("AWS_ENDPOINT_URL_S3") or get("AWS_ENDPOINT_URL"),
            region=get("AWS_DEFAULT_REGION") or get("AWS_REGION"),
            **policy_from_env(env),
        )

    def sse_args(self) -> dict[str, str]:
        """The server-side encryption request sent with every write."""
        args = {"ServerSideEncryption": self.sse}
        if self.sse == "aws:kms" and self.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        return args

    def same_account(self, other: S3Config) -> bool:
        """True when one set of credentials can reach both (server-side copies are possible)."""
        keys = ("endpoint_url", "region", "access_key", "secret_key", "session_token")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


def policy_from_env(env: Any = None) -> dict[str, Any]:
    """The hub's write policy (encryption, retries): the same for every S3 location."""
    env = os.environ if env is None else env
    sse = (env.get("XFORCE_S3_SSE") or "AES256").strip()
    if sse not in ("AES256", "aws:kms"):
        raise ConfigError(f"XFORCE_S3_SSE must be AES256 or aws:kms, not {sse!r}")
    try:
        attempts = int(env.get("XFORCE_S3_MAX_ATTEMPTS") or 5)
    except ValueError:
        raise ConfigError("XFORCE_S3_MAX_ATTEMPTS must be a whole number") from None
    if not 1 <= attempts <= 20:
        raise ConfigError("XFORCE_S3_MAX_ATTEMPTS must be between 1 and 20")
    kms_key = (env.get("XFORCE_S3_SSE_KMS_KEY_ID") or "").strip() or None
    return {"sse": sse, "sse_kms_key_id": kms_key, "max_attempts": attempts}


_CLIENTS: dict[S3Config, Any] = {}
_FILESYSTEMS: dict[S3Config, pafs.S3FileSystem] = {}
_LOCK = threading.Lock()


def s3_client(cfg: S3Config) -> Any:
    """A boto3 S3 client for ``cfg`` (cached per process; boto3 clients are thread-safe)."""
    with _LOCK:
        if cfg not in _CLIENTS:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(
                aws_access_key_id=cfg.access_key,
                aws_secret_access_key=cfg.secret_key,
                aws_session_token=cfg.session_token,
                region_name=cfg.region,
            )
            config = Config(
                retries={"total_max_attempts": cfg.max_attempts, "mode": "standard"},  # throttling + 5xx, backoff
                s3={"addressing_style": "path"} if cfg.endpoint_url else {},
                connect_timeout=10,
                read_timeout=60,
            )
            _CLIENTS[cfg] = session.client("s3", endpoint_url=cfg.endpoint_url, config=config)
        return _CLIENTS[cfg]


def s3_filesystem(cfg: S3Config) -> pafs.S3FileSystem:
    """A ``pyarrow.fs.S3FileSystem`` over the same endpoint and credentials as :func:`s3_client`."""
    with _LOCK:
        if cfg not in _FILESYSTEMS:
            kwargs: dict[str, Any] = {
                "region": cfg.region,
                "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=cfg.max_attempts),
            }
            if cfg.access_key:
                kwargs.update(access_key=cfg.access_key, secret_key=cfg.secret_key, session_token=cfg.session_token)
            if cfg.endpoint_url:
                scheme, _, hostport = cfg.endpoint_url.partition("://")
                if not hostport:
                    scheme, hostport = "https", cfg.endpoint_url
                kwargs.update(scheme=scheme, endpoint_override=hostport.rstrip("/"))
            _FILESYSTEMS[cfg] = pafs.S3FileSystem(**kwargs)
        return _FILESYSTEMS[cfg]


def is_not_found(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")
