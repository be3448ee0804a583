"""The object-store port and its adapters, chosen by ``CUSTODY_OBJECT_STORE``."""

from custody_common.objectstore.base import (
    ObjectInfo,
    ObjectLocked,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
)
from custody_common.objectstore.factory import open_object_store
from custody_common.objectstore.local import LocalFolderStore
from custody_common.objectstore.s3 import S3Store

__all__ = [
    "LocalFolderStore",
    "ObjectInfo",
    "ObjectLocked",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectStoreUnavailable",
    "S3Store",
    "open_object_store",
]
