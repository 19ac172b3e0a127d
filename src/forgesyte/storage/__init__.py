"""Storage of uploaded videos and result documents."""

from forgesyte.storage.base import ObjectInfo, Storage, StorageWriter
from forgesyte.storage.errors import ObjectNotFound, StorageError, StorageUnavailable
from forgesyte.storage.factory import open_storage

__all__ = [
    "ObjectInfo",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "StorageWriter",
    "open_storage",
]
