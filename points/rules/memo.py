"""A bounded memo: the results of a pure function of one key, for as long as their owner lives.

The rules engine meets the same few values over and over (a day's counter keys, the horizon of
the counters a state keeps): working each out once saves the per-event cost. A :class:`Memo`
is a ``dict`` (lookups stay at C speed: ``memo[key]``) whose missing keys are computed by its
function and kept; at ``limit`` entries it forgets everything at once, so a long-running
worker's memory stays bounded while the working set (a few days, a few hundred keys) is small.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Final, TypeVar

__all__ = ["MEMO_LIMIT", "Memo"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Entries a memo holds before it starts again: far above any working set seen in a day.
MEMO_LIMIT: Final = 4096


class Memo(dict[K, V]):
    """``memo[key]`` is ``make(key)``, computed on first use and kept (see the module)."""

    __slots__ = ("_limit", "_make")

    def __init__(self, make: Callable[[K], V], limit: int = MEMO_LIMIT) -> None:
        super().__init__()
        self._make = make
        self._limit = limit

    def __missing__(self, key: K) -> V:
        value = self._make(key)
        if len(self) >= self._limit:
            self.clear()
        self[key] = value
        return value
