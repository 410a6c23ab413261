"""A small thread-safe cache whose entries expire: answers worth a few seconds or minutes of reuse
(verified credentials, a scope's extents), never a source of truth."""
from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Entries kept for `seconds` after they are put (0 or less: nothing is kept).

    Parameters
    ----------
    seconds
        How long an entry is returned after `put`, s.
    max_entries
        Beyond this many, the cache is emptied before the next entry (a bound on memory, not an
        eviction policy: every caller can compute again what it lost).
    """

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        """The value put for `key` less than `seconds` ago, else None."""
        if self.seconds <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
        return entry[1] if entry and entry[0] > time.monotonic() else None

    def put(self, key: K, value: V) -> None:
        """Keep `value` for `key` for `seconds` from now."""
        if self.seconds > 0:
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (time.monotonic() + self.seconds, value)
