"""Durable state behind one interface (`palaver.storage.base.Storage`).

`open_storage(url)` picks the implementation from the database URL.
"""

from palaver.storage.base import Storage, open_storage

__all__ = ["Storage", "open_storage"]
