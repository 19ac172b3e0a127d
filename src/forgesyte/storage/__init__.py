"""Storage of uploaded videos and result documents."""

from forgesyte.storage.base import Storage, StorageError, StorageWriter, open_storage

__all__ = ["Storage", "StorageError", "StorageWriter", "open_storage"]
