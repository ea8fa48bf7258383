"""Binary codes on disk: a faiss binary index plus an SQLite sidecar (`store`)."""

from aetools.index.store import FileRecord, HashIndex, HashIndexError, pack_codes, unpack_codes

__all__ = ["FileRecord", "HashIndex", "HashIndexError", "pack_codes", "unpack_codes"]
