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

__all__ = [
    "ObjectInfo",
    "ObjectLocked",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectStoreUnavailable",
    "open_object_store",
]
