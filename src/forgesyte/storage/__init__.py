"""Storage of uploaded videos and result documents."""

from forgesyte.storage.base import Storage, StorageWriter
from forgesyte.storage.errors import ObjectNotFound, StorageError, StorageUnavailable
from forgesyte.storage.factory import open_storage

__all__ = [
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "StorageWriter",
    "open_storage",
]
