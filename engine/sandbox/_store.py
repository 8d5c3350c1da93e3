"""In-memory records of a sandbox, with the seed they reset to.

Records live per resource (keyed by its collection path template) in
insertion order, each with the values of the collection's path parameters
(its scope: the ``tasklist`` of ``/lists/{tasklist}/tasks``). A seeded record
without a scope belongs to every scope. Time comes from an injected clock; the
default one starts at 2024-01-01T00:00:00Z and advances one second per reading,
so records carry distinct, increasing, reproducible timestamps.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

Scope = tuple[tuple[str, str], ...]

_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


class StepClock:
    """A deterministic clock: 2024-01-01T00:00:00Z, then one second later at each call."""

    def __init__(self, start: datetime = _EPOCH, step: timedelta = timedelta(seconds=1)):
        self.start = start
        self.step = step
        self._ticks = 0

    def __call__(self) -> datetime:
        value = self.start + self.step * self._ticks
        self._ticks += 1
        return value

    def reset(self) -> None:
        self._ticks = 0


@dataclass
class Entry:
    """One stored record: its key (the value of the resource's key field, as text), scope and data."""

    key: str
    scope: Scope
    data: dict


def in_scope(entry_scope: Scope, scope: Scope) -> bool:
    """True when every path parameter the entry was stored under has the same value in ``scope``."""
    wanted = dict(scope)
    return all(wanted.get(name) == value for name, value in entry_scope)


class RecordStore:
    """Records of every resource, tombstones of deleted virtual records, id counters and the clock."""

    def __init__(self, clock: Callable[[], datetime] | None = None):
        self.clock = clock or StepClock()
        self.lock = threading.RLock()
        self._seed: dict[str, list[Entry]] = {}
        self._entries: dict[str, list[Entry]] = {}
        # Entries by resource and key: a lookup or a put is a dict access, not a scan of the
        # collection (seeding 100,000 records scanned 5e9 entries). Kept with _entries.
        self._keyed: dict[str, dict[str, list[Entry]]] = {}
        self._tombstones: set[tuple[str, Scope, str]] = set()
        self._counters: dict[str, int] = {}
        # bumped by every change, so a listing computed at one version can be reused until the next
        self.version = 0

    def set_seed(self, seed: dict[str, list[Entry]]) -> None:
        """Replace the seed and reset to it."""
        with self.lock:
            self._seed = copy.deepcopy(seed)
            self.reset()

    def reset(self) -> None:
        """Forget every change: records back to the seed, counters and the default clock back to the start."""
        with self.lock:
            self._entries = copy.deepcopy(self._seed)
            self._keyed = {}
            for resource, entries in self._entries.items():
                keyed = self._keyed[resource] = {}
                for entry in entries:
                    keyed.setdefault(entry.key, []).append(entry)
            self.version += 1
            self._tombstones.clear()
            self._counters.clear()
            if isinstance(self.clock, StepClock):
                self.clock.reset()

    def now(self) -> str:
        """The clock's current time as RFC 3339 text in UTC (``2024-01-01T00:00:00Z``)."""
        moment = self.clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")

    def next_number(self, resource: str) -> int:
        with self.lock:
            self._counters[resource] = self._counters.get(resource, 0) + 1
            return self._counters[resource]

    def entries(self, resource: str, scope: Scope) -> list[Entry]:
        with self.lock:
            return [e for e in self._entries.get(resource, []) if in_scope(e.scope, scope)]

    def find(self, resource: str, scope: Scope, key: str) -> Entry | None:
        with self.lock:
            return next((e for e in self._keyed.get(resource, {}).get(key, ()) if in_scope(e.scope, scope)), None)

    def put(self, resource: str, scope: Scope, key: str, data: dict) -> None:
        """Store ``data`` under ``key``, replacing a record of the same key in the same scope (in place)."""
        with self.lock:
            self.version += 1
            same_key = self._keyed.setdefault(resource, {}).setdefault(key, [])
            for entry in same_key:
                if in_scope(entry.scope, scope):
                    entry.data = data
                    return
            entry = Entry(key, scope, data)
            self._entries.setdefault(resource, []).append(entry)
            same_key.append(entry)
            self._tombstones.discard((resource, scope, key))

    def delete(self, resource: str, scope: Scope, key: str) -> bool:
        with self.lock:
            self.version += 1
            same_key = self._keyed.get(resource, {}).get(key, [])
            for entry in same_key:
                if in_scope(entry.scope, scope):
                    same_key.remove(entry)
                    if not same_key:
                        del self._keyed[resource][key]
                    entries = self._entries[resource]
                    del entries[next(i for i, e in enumerate(entries) if e is entry)]
                    return True
            return False

    def bury(self, resource: str, scope: Scope, key: str) -> None:
        """Remember that a virtual record was deleted, so it is no longer synthesised."""
        with self.lock:
            self.version += 1
            self._tombstones.add((resource, scope, key))

    def buried(self, resource: str, scope: Scope, key: str) -> bool:
        with self.lock:
            return (resource, scope, key) in self._tombstones

    def snapshot(self) -> dict[str, list[Entry]]:
        """A deep copy of every stored record, by resource."""
        with self.lock:
            return copy.deepcopy(self._entries)

    def is_taken(self, resource: str, key: str) -> bool:
        """True when some record of ``resource`` (in any scope) has ``key``."""
        with self.lock:
            return key in self._keyed.get(resource, {})
