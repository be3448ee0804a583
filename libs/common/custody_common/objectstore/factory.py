"""Choosing the object-store adapter from settings."""

from __future__ import annotations

from pathlib import Path

from custody_common.errors import ConfigurationError
from custody_common.objectstore.base import ObjectStore
from custody_common.objectstore.local import LocalFolderStore
from custody_common.objectstore.s3 import S3Store, parse_endpoint
from custody_common.settings import Settings

_S3_SCHEME = "s3://"


def open_object_store(settings: Settings) -> ObjectStore:
    """The object store ``settings.object_store`` names.

    None: a folder ``objects`` under ``settings.home``. ``s3://BUCKET``: that bucket on the
    server ``settings.s3_endpoint`` (with or without ``http(s)://``; a scheme overrides
    ``s3_secure``), with ``s3_access_key``, ``s3_secret_key`` and ``s3_region``. Anything else: a
    folder path. Opening does not contact the store; call ``check()`` for that, and
    ``S3Store.ensure_bucket()`` when provisioning.
    """
    target = settings.object_store
    if target is None or not target.strip():
        return LocalFolderStore(settings.home / "objects")
    target = target.strip()
    if not target.lower().startswith(_S3_SCHEME):
        return LocalFolderStore(Path(target).expanduser())

    bucket = target[len(_S3_SCHEME) :].strip("/")
    if not bucket or "/" in bucket:
        raise ConfigurationError(
            f"CUSTODY_OBJECT_STORE={target!r} must be s3://BUCKET, a bucket name without a path"
        )
    if not settings.s3_endpoint:
        raise ConfigurationError(f"CUSTODY_OBJECT_STORE={target!r} needs CUSTODY_S3_ENDPOINT (host:port or a URL)")
    if not settings.s3_access_key or not settings.s3_secret_key:
        raise ConfigurationError(
            f"CUSTODY_OBJECT_STORE={target!r} needs CUSTODY_S3_ACCESS_KEY and CUSTODY_S3_SECRET_KEY"
        )
    try:
        endpoint, secure = parse_endpoint(settings.s3_endpoint, settings.s3_secure)
    except ValueError as exc:
        raise ConfigurationError(f"CUSTODY_S3_ENDPOINT: {exc}") from exc
    return S3Store(
        bucket=bucket,
        endpoint=endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        region=settings.s3_region,
        secure=secure,
    )
