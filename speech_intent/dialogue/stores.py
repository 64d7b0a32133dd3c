"""Session stores: where each session's :class:`~speech_intent.dialogue.state.DialogueState` lives between turns.

A store keeps JSON-able mappings by session id: ``load(session) -> dict | None``, ``save(session, data)``,
``delete(session)``, and optionally ``lock(session)`` (a context manager held across a turn, for stores shared
between processes). :class:`MemoryStore` (the default) keeps them in this process; :class:`RedisStore` in a
Redis server, so several service replicas share sessions (and lock them). Both forget a session idle longer than ``ttl``
seconds (Redis by key expiry).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Dict, Mapping, Optional, Protocol, Tuple, runtime_checkable

from ..errors import ConfigError

__all__ = ["SessionStore", "MemoryStore", "RedisStore"]


@runtime_checkable
class SessionStore(Protocol):
    """Where session states live between turns."""

    def load(self, session: str) -> Optional[Dict[str, Any]]: ...

    def save(self, session: str, data: Mapping[str, Any]) -> None: ...

    def delete(self, session: str) -> None: ...


def _check_ttl(ttl: Optional[float]) -> Optional[float]:
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0):
        raise ConfigError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
    return ttl


class MemoryStore:
    """Sessions in this process's memory (JSON-encoded, so a state never shares objects with its caller).

    Args:
        ttl: forget a session not saved for this many seconds (``None``: keep until deleted).
    """

    def __init__(self, ttl: Optional[float] = None) -> None:
        self.ttl = _check_ttl(ttl)
        self._data: Dict[str, Tuple[float, str]] = {}
        self._lock = threading.Lock()

    def load(self, session: str) -> Optional[Dict[str, Any]]:
        with self._lock:
            entry = self._data.get(session)
            if entry is None:
                return None
            if self.ttl is not None and time.monotonic() - entry[0] > self.ttl:
                del self._data[session]
                return None
            return json.loads(entry[1])

    def save(self, session: str, data: Mapping[str, Any]) -> None:
        encoded = json.dumps(data)
        with self._lock:
            self._data[session] = (time.monotonic(), encoded)

    def delete(self, session: str) -> None:
        with self._lock:
            self._data.pop(session, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __repr__(self) -> str:
        return f"MemoryStore(ttl={self.ttl})"


class RedisStore:
    """Sessions in Redis (``pip install 'speech-intent[dialogue]'``): one JSON string a key, expiring when idle.

    Args:
        url: a Redis URL (``redis://host:6379/0``); or pass ``client``, a ``redis.Redis``.
        ttl: seconds a session lives after its last turn (Redis ``EX``; ``None``: no expiry).
        prefix: the key prefix (``<prefix><session>``).
        lock_timeout, lock_wait: a session's lock (:meth:`lock`) is held at most ``lock_timeout`` seconds and
            waited for at most ``lock_wait`` seconds (then ``redis.exceptions.LockError``).
    """

    def __init__(self, url: Optional[str] = "redis://localhost:6379/0", *, client: Any = None,
                 ttl: Optional[float] = 3600, prefix: str = "speech-intent:dialogue:", lock_timeout: float = 60.0,
                 lock_wait: float = 30.0) -> None:
        self.ttl = _check_ttl(ttl)
        self.prefix = prefix
        self.lock_timeout, self.lock_wait = lock_timeout, lock_wait
        if client is None:
            try:
                import redis
            except ImportError as error:  # pragma: no cover - depends on the install
                raise ConfigError("RedisStore needs redis-py: pip install 'speech-intent[dialogue]'") from error
            client = redis.Redis.from_url(url)
        self.client = client

    def _key(self, session: str) -> str:
        return f"{self.prefix}{session}"

    def load(self, session: str) -> Optional[Dict[str, Any]]:
        raw = self.client.get(self._key(session))
        return None if raw is None else json.loads(raw)

    def save(self, session: str, data: Mapping[str, Any]) -> None:
        expiry = None if self.ttl is None else max(1, int(round(self.ttl * 1000)))
        self.client.set(self._key(session), json.dumps(data), px=expiry)

    def delete(self, session: str) -> None:
        self.client.delete(self._key(session))

    def lock(self, session: str):
        """A Redis lock on the session (``<prefix><session>:lock``): replicas sharing the server take a session's
        turns one at a time. Held at most ``lock_timeout`` seconds (a crashed holder frees it)."""
        return self.client.lock(f"{self._key(session)}:lock", timeout=self.lock_timeout, blocking_timeout=self.lock_wait)

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r}, ttl={self.ttl})"
