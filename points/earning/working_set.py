"""The earning worker's in-memory copy of its customers' rule state and profiles.

Why: a worker owns its partitions, so the customers it sees are (nearly always) only its own,
and reading and decoding every batch's rule state and profiles from the database again cost
more CPU than evaluating the rules. The working set keeps what the last committed batches left.

Why it is safe: the copy is only a guess, and every write checks it. Each customer's
``customer_rule_state`` row carries a version (``events_applied``), bumped by every batch that
touches the customer — profile changes included, so one number covers state and profile. The
batch writes each row only where the stored version is still the one the batch started from;
if any row moved on (another worker took the partition in a rebalance, then gave it back), the
write raises :class:`StaleWorkingSet`, the whole transaction rolls back, the set is emptied and
the batch runs again from the database under row locks. Entries are added only after a commit.

Bounded: past ``capacity`` customers, the least recently written are dropped (they are read
from the database again when they come back).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from threading import Lock

from points.rules import Profile, RuleState

__all__ = ["CachedCustomer", "StaleWorkingSet", "WorkingSet"]


class StaleWorkingSet(Exception):
    """A customer's stored rule state moved on since this worker last wrote it."""


@dataclass(frozen=True, slots=True)
class CachedCustomer:
    #: the stored ``events_applied`` of the customer's rule state row (0: no row yet)
    version: int
    #: None when the customer has no rule state yet
    state: RuleState | None
    #: None when no profile was ever received
    profile: Profile | None


class WorkingSet:
    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must not be negative")
        self.capacity = capacity
        # Insertion order is recency order: put() moves a customer to the end.
        self._entries: dict[str, CachedCustomer] = {}
        # A worker runs batches of disjoint partitions in parallel threads (db_lanes).
        self._lock = Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def split(self, customers: Iterable[str]) -> tuple[dict[str, CachedCustomer], list[str]]:
        """The customers held here, and those to read from the database."""
        entries = self._entries
        held: dict[str, CachedCustomer] = {}
        missing: list[str] = []
        with self._lock:
            for customer in customers:
                entry = entries.get(customer)
                if entry is None:
                    missing.append(customer)
                else:
                    held[customer] = entry
        return held, missing

    def put(self, committed: dict[str, CachedCustomer]) -> None:
        """Remember what a committed batch left (call only after the commit)."""
        if not self.capacity:
            return
        entries = self._entries
        with self._lock:
            for customer, entry in committed.items():
                entries.pop(customer, None)
                entries[customer] = entry
            excess = len(entries) - self.capacity
            if excess > 0:
                for customer in list(islice(entries, excess)):
                    del entries[customer]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
