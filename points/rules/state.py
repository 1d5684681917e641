"""Per-customer rule state: immutable, and a lossless round trip through a JSON dict.

The stream worker loads a customer's :class:`RuleState` from the database, calls
``evaluate`` for each of the customer's events in order, and stores the returned state in the
same transaction as the postings. Nothing here reads the clock.

Period counters (points earned per day and per month, overall and per capped rule) live in one
flat mapping of the state; :mod:`points.rules.counters` names their keys and prunes them.

The rest of this module is the state's JSON round trip, which runs once per customer per
batch: each check takes the common case inline, and values that recur across customers (dates,
streak positions) are shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any, Final

from points.rules.behaviour import EMPTY_BEHAVIOUR, Behaviour
from points.rules.counters import (
    DAY_COUNTERS_KEPT,
    MONTH_COUNTERS_KEPT,
    advance_counters,
    month_index,
)
from points.rules.counters import (
    EMPTY as _EMPTY,
)
from points.rules.memo import MEMO_LIMIT, Memo

__all__ = [
    "STATE_FORMAT",
    "ChallengeState",
    "RuleState",
    "StreakState",
    "behaviour_of",
    "copy_of",
    "refrozen",
    "slot_setter",
]

#: Written by to_json. Format 1 (before streaks were kept by event time and milestones
#: remembered the purchase that paid them) still loads: see RuleState.from_json.
STATE_FORMAT: Final = 2
_FORMATS_READ: Final = frozenset({1, 2})
#: StreakState.settled when nothing has been settled yet (no period is negative).
NO_SETTLED: Final = (-1, 0, 0)


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only, key-sorted copy (sorted so ``to_json`` and iteration are deterministic)."""
    if len(mapping) < 2:  # nothing to sort: skip ``sorted`` (RuleState() is built per customer)
        return MappingProxyType(dict(mapping)) if mapping else _EMPTY
    return MappingProxyType(dict(sorted(mapping.items())))


def _frozen_fresh(mapping: dict[str, Any]) -> Mapping[str, Any]:
    """``_frozen`` for a dict nobody else holds: wrapped as it is when already in key order."""
    if len(mapping) < 2:
        return MappingProxyType(mapping) if mapping else _EMPTY
    keys = list(mapping)
    if keys == sorted(keys):
        return MappingProxyType(mapping)
    return MappingProxyType(dict(sorted(mapping.items())))


def refrozen(updated: dict[str, Any], before: Mapping[str, Any]) -> Mapping[str, Any]:
    """A state mapping after the engine set some keys in ``updated`` (a copy of ``before``).

    Setting an existing key keeps the (sorted) order, so only new keys call for a sort.
    """
    if len(updated) == len(before):
        return MappingProxyType(updated)
    return MappingProxyType(dict(sorted(updated.items())))


def copy_of(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A mutable copy; ``dict(proxy)`` goes key by key, ``proxy.copy()`` copies the dict at once."""
    if type(mapping) is MappingProxyType:
        return mapping.copy()
    return dict(mapping)


@dataclass(frozen=True, slots=True)
class StreakState:
    """One streak's progress, kept so that a late period is counted as in-order arrival would.

    Periods are day ordinals, or week numbers since year 1 (a Monday). ``recent`` holds the
    active periods not older than the rule file's lateness window behind the newest one, in
    order; older ones are folded into ``settled``: (the newest period folded in, the run length
    there, the bonuses its runs deserved), or (-1, 0, 0). ``paid`` counts the bonuses paid so
    far, so a late period that completes a streak pays its bonus once and one that changes
    nothing pays nothing. ``last_period`` and ``length`` are the newest active period and the
    run length there (what the app's progress shows). See ``points.rules.gamification`` for
    the walk.
    """

    last_period: int
    length: int
    recent: tuple[int, ...] = ()
    settled: tuple[int, int, int] = NO_SETTLED
    paid: int = 0

    @classmethod
    def from_format_1(cls, last_period: int, length: int) -> StreakState:
        """A streak stored before periods were kept: all of it is settled, at its last period.

        Its bonuses were paid as they fell due, so deserved and paid both start at zero here
        (only their difference matters); a later period continues the run as before.
        """
        return cls(last_period, length, (), (last_period, length, 0), 0)


@dataclass(frozen=True, slots=True)
class ChallengeState:
    """Progress in one challenge for one period (``YYYY-MM`` or ``YYYY-Www``)."""

    period: str
    opted_in: bool = False
    categories: frozenset[str] = frozenset()
    completed: bool = False


class _RuleStateType(type):
    """RuleState's metaclass: ``RuleState()`` (no arguments) returns one shared empty state.

    The stream worker makes a fresh empty state for every customer it has none for, in every
    batch; the frozen dataclass ``__init__`` (eleven ``object.__setattr__`` calls, four default
    dicts) and ``__post_init__`` (freezing them) cost about 2 µs each time for a value that is
    always the same. A state is immutable (frozen, read-only mappings), so one instance can
    serve everyone. Any argument, or a subclass, goes the ordinary dataclass way.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs and cls is RuleState and _EMPTY_STATE is not None:
            return _EMPTY_STATE
        return super().__call__(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class RuleState(metaclass=_RuleStateType):
    """Everything the rules remember about one customer between events."""

    purchase_count: int = 0
    cumulative_spend_minor: int = 0
    last_purchase_on: date | None = None
    last_activity_on: date | None = None
    latest_day: date | None = None
    badges: frozenset[str] = frozenset()
    partners_seen: frozenset[str] = frozenset()
    #: milestone rule id -> points awarded when it was reached (what a clawback takes back)
    milestones: Mapping[str, int] = field(default_factory=dict)
    #: milestone rule id -> the event whose earning paid it (where a clawback takes it from)
    milestone_events: Mapping[str, str] = field(default_factory=dict)
    streaks: Mapping[str, StreakState] = field(default_factory=dict)
    challenges: Mapping[str, ChallengeState] = field(default_factory=dict)
    counters: Mapping[str, int] = field(default_factory=dict)
    #: what a full refund made the rules forget, so a later purchase could earn it again
    #: ("partner:<id>": the first partner purchase, "milestone:<rule id>": a milestone), ->
    #: (the refund's event time in epoch seconds, the milestone's points taken back). A
    #: purchase processed later but made before that time was made while it was still held:
    #: see points.rules.recall. Almost always empty; entries go once out of the lateness window.
    forgotten: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    #: the behaviour profile (points.rules.behaviour); stored only once it has something
    behaviour: Behaviour = EMPTY_BEHAVIOUR

    def __post_init__(self) -> None:
        # Copy and freeze the mappings so no caller can change a state after the fact.
        for name in (
            "milestones",
            "milestone_events",
            "streaks",
            "challenges",
            "counters",
            "forgotten",
        ):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @classmethod
    def _trusted(
        cls,
        purchase_count: int,
        cumulative_spend_minor: int,
        last_purchase_on: date | None,
        last_activity_on: date | None,
        latest_day: date | None,
        badges: frozenset[str],
        partners_seen: frozenset[str],
        milestones: Mapping[str, int],
        milestone_events: Mapping[str, str],
        streaks: Mapping[str, StreakState],
        challenges: Mapping[str, ChallengeState],
        counters: Mapping[str, int],
        forgotten: Mapping[str, tuple[int, int]],
        behaviour: Behaviour,
    ) -> RuleState:
        """A state from parts the rules engine built itself, without ``__post_init__``.

        The engine makes a new state for every event and the stream one per customer per
        batch; copying and re-sorting all four mappings each time was most of the cost. Only
        for mappings that are already read-only and key-sorted (``_frozen`` output, a mapping
        of another state, or a ``MappingProxyType`` over a sorted dict nobody else holds).
        """
        state = object.__new__(cls)
        _set_purchase_count(state, purchase_count)
        _set_cumulative_spend_minor(state, cumulative_spend_minor)
        _set_last_purchase_on(state, last_purchase_on)
        _set_last_activity_on(state, last_activity_on)
        _set_latest_day(state, latest_day)
        _set_badges(state, badges)
        _set_partners_seen(state, partners_seen)
        _set_milestones(state, milestones)
        _set_milestone_events(state, milestone_events)
        _set_streaks(state, streaks)
        _set_challenges(state, challenges)
        _set_counters(state, counters)
        _set_forgotten(state, forgotten)
        _set_behaviour(state, behaviour)
        return state

    # ------------------------------------------------------------------ period counters

    def is_day_kept(self, day: date) -> bool:
        """Whether counters for ``day`` are still held (False: a late event, caps used up)."""
        if self.latest_day is None:
            return True
        return day > self.latest_day - timedelta(days=DAY_COUNTERS_KEPT)

    def is_month_kept(self, day: date) -> bool:
        if self.latest_day is None:
            return True
        return month_index(day) > month_index(self.latest_day) - MONTH_COUNTERS_KEPT

    def counter(self, key: str) -> int:
        return self.counters.get(key, 0)

    def with_counts(self, increments: Mapping[str, int], day: date) -> RuleState:
        """Add to counters, move the latest day forward, and drop periods no longer kept."""
        counters, latest = advance_counters(self.counters, self.latest_day, increments, day)
        return type(self)._trusted(
            self.purchase_count,
            self.cumulative_spend_minor,
            self.last_purchase_on,
            self.last_activity_on,
            latest,
            self.badges,
            self.partners_seen,
            self.milestones,
            self.milestone_events,
            self.streaks,
            self.challenges,
            counters,
            self.forgotten,
            self.behaviour,
        )

    # ------------------------------------------------------------------ serialisation

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (sorted, plain types) that :meth:`from_json` turns back exactly."""
        # Runs once per customer per batch: empty collections (most are) skip sorting and
        # comprehensions, dates come from a cache of their ISO text, and the read-only
        # mappings (always MappingProxyType over a dict, see _trusted) are copied at C speed.
        iso = _ISO_DATES
        last_purchase_on = self.last_purchase_on
        last_activity_on = self.last_activity_on
        latest_day = self.latest_day
        badges = self.badges
        partners_seen = self.partners_seen
        milestones = self.milestones
        milestone_events = self.milestone_events
        streaks = self.streaks
        challenges = self.challenges
        counters = self.counters
        behaviour = self.behaviour
        out = {
            "format": STATE_FORMAT,
            "purchase_count": self.purchase_count,
            "cumulative_spend_minor": self.cumulative_spend_minor,
            "last_purchase_on": None if last_purchase_on is None else iso[last_purchase_on],
            "last_activity_on": None if last_activity_on is None else iso[last_activity_on],
            "latest_day": None if latest_day is None else iso[latest_day],
            "badges": sorted(badges) if badges else [],
            "partners_seen": sorted(partners_seen) if partners_seen else [],
            "milestones": milestones.copy()
            if type(milestones) is MappingProxyType
            else dict(milestones),
            "milestone_events": milestone_events.copy()
            if type(milestone_events) is MappingProxyType
            else dict(milestone_events),
            "streaks": {
                rule_id: {
                    "last_period": s.last_period,
                    "length": s.length,
                    "recent": list(s.recent),
                    "settled": list(s.settled),
                    "paid": s.paid,
                }
                for rule_id, s in streaks.items()
            }
            if streaks
            else {},
            "challenges": {
                rule_id: {
                    "period": c.period,
                    "opted_in": c.opted_in,
                    "categories": sorted(c.categories),
                    "completed": c.completed,
                }
                for rule_id, c in challenges.items()
            }
            if challenges
            else {},
            "counters": counters.copy() if type(counters) is MappingProxyType else dict(counters),
        }
        forgotten = self.forgotten
        if forgotten:  # absent when empty (nearly always): states before it look the same
            out["forgotten"] = {key: list(entry) for key, entry in forgotten.items()}
        # Absent until the first purchase, so states without a profile read as they did.
        if behaviour is not EMPTY_BEHAVIOUR:
            out["behaviour"] = behaviour.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleState:
        """Rebuild a state from :meth:`to_json` output; raise ValueError on anything else."""
        # Every value is still checked (a corrupt stored state must not pass), in the same
        # order as ever so the same error is reported, but each check takes the common case
        # inline (a plain int, a cached date, an empty collection) and only calls the general
        # helper otherwise; the state is built once, not copied again by __post_init__: this
        # runs once per customer per batch.
        try:
            stored_format = data.get("format")
            if stored_format not in _FORMATS_READ or type(stored_format) is not int:
                raise ValueError(f"unsupported rule state format {stored_format!r}")
            purchase_count = data["purchase_count"]
            if type(purchase_count) is not int or purchase_count < 0:
                purchase_count = _int(purchase_count)
            cumulative_spend_minor = data["cumulative_spend_minor"]
            if type(cumulative_spend_minor) is not int or cumulative_spend_minor < 0:
                cumulative_spend_minor = _int(cumulative_spend_minor)
            dates = _DATES
            value = data["last_purchase_on"]
            last_purchase_on = dates[value] if type(value) is str else _date_in(value)
            value = data["last_activity_on"]
            last_activity_on = dates[value] if type(value) is str else _date_in(value)
            value = data["latest_day"]
            latest_day = dates[value] if type(value) is str else _date_in(value)
            value = data["badges"]
            badges = _NO_STRINGS if type(value) is list and not value else _str_set(value)
            value = data["partners_seen"]
            partners_seen = _NO_STRINGS if type(value) is list and not value else _str_set(value)
            milestones = _counts_in(data["milestones"])
            # Format 1 did not name the purchase that paid a milestone: left unknown (see
            # points.rules.clawback for what a refund does then).
            raw = data["milestone_events"] if stored_format >= 2 else {}
            milestone_events = _EMPTY if type(raw) is dict and not raw else _names_in(raw)
            streaks = _streaks_in(data["streaks"])
            raw = data["challenges"]
            if type(raw) is dict and not raw:
                challenges = _EMPTY
            else:
                challenges = _frozen_fresh(
                    {
                        str(k): ChallengeState(
                            str(v["period"]),
                            _bool(v["opted_in"]),
                            _str_set(v["categories"]),
                            _bool(v["completed"]),
                        )
                        for k, v in raw.items()
                    }
                )
            counters = _counts_in(data["counters"])
            raw = data.get("forgotten")
            forgotten = _EMPTY if raw is None else _forgotten_in(raw)
            raw = data.get("behaviour")
            behaviour = EMPTY_BEHAVIOUR if raw is None else Behaviour.from_json(raw)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed rule state: {exc!r}") from exc
        return cls._trusted(
            purchase_count,
            cumulative_spend_minor,
            last_purchase_on,
            last_activity_on,
            latest_day,
            badges,
            partners_seen,
            milestones,
            milestone_events,
            streaks,
            challenges,
            counters,
            forgotten,
            behaviour,
        )


def slot_setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """The slot descriptor's own setter for ``cls.name``: fills a frozen slotted dataclass
    being built by trusted code, at about half the cost of its generated ``__init__``."""
    setter: Callable[[Any, Any], None] = getattr(cls, name).__set__
    return setter


# The slot setters RuleState._trusted fills a new state with (the frozen dataclass's own
# __setattr__ refuses, as it should for everyone else).
_set_purchase_count = slot_setter(RuleState, "purchase_count")
_set_cumulative_spend_minor = slot_setter(RuleState, "cumulative_spend_minor")
_set_last_purchase_on = slot_setter(RuleState, "last_purchase_on")
_set_last_activity_on = slot_setter(RuleState, "last_activity_on")
_set_latest_day = slot_setter(RuleState, "latest_day")
_set_badges = slot_setter(RuleState, "badges")
_set_partners_seen = slot_setter(RuleState, "partners_seen")
_set_milestones = slot_setter(RuleState, "milestones")
_set_milestone_events = slot_setter(RuleState, "milestone_events")
_set_forgotten = slot_setter(RuleState, "forgotten")
_set_streaks = slot_setter(RuleState, "streaks")
_set_challenges = slot_setter(RuleState, "challenges")
_set_counters = slot_setter(RuleState, "counters")
_set_behaviour = slot_setter(RuleState, "behaviour")

#: What ``RuleState()`` returns (see _RuleStateType): built the ordinary way, once.
_EMPTY_STATE: RuleState | None = None
_EMPTY_STATE = RuleState()


def behaviour_of(state: RuleState) -> Behaviour:
    """The customer's behaviour profile; for one whose purchases predate profiles (a count but
    no profile yet), a profile seeded from the state: not new, last purchase known."""
    behaviour = state.behaviour
    if behaviour is EMPTY_BEHAVIOUR and state.purchase_count:
        return Behaviour.seeded(state.last_purchase_on)
    return behaviour


def _format_1_streak(position: tuple[int, int]) -> StreakState:
    """A format-1 streak at (last period, length): see StreakState.from_format_1."""
    return StreakState.from_format_1(*position)


#: ISO text -> date, date -> ISO text, and (last period, length) -> format-1 StreakState: the
#: same few days and streak positions recur in every customer's state, and all are immutable,
#: so the round trip shares them (for the process's life, bounded: see points.rules.memo).
_DATES: Memo[str, date] = Memo(date.fromisoformat)
_ISO_DATES: Memo[date, str] = Memo(date.isoformat)
_STREAKS: Memo[tuple[int, int], StreakState] = Memo(_format_1_streak)
_NO_STRINGS: Final[frozenset[str]] = frozenset()


def _date_in(value: object) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO date string, got {value!r}")
    return _DATES[value]


#: (last period, length, recent, settled, paid) as stored -> StreakState: from_json meets the
#: same few streak positions in every batch, so each is checked and built once.
_STREAKS_2: dict[tuple[int, int, tuple[Any, ...], tuple[Any, ...], Any], StreakState] = {}


def _streak_in(last_period: int, length: int, raw: Mapping[str, Any]) -> StreakState:
    """A format-2 streak: its window of periods, what was settled and what was paid."""
    recent = raw["recent"]
    settled = raw["settled"]
    paid = raw["paid"]
    if type(recent) is not list or type(settled) is not list:
        raise TypeError(f"expected lists of periods, got {recent!r} and {settled!r}")
    key = (last_period, length, tuple(recent), tuple(settled), paid)
    found = _STREAKS_2.get(key)
    if found is not None:
        return found
    if not _INT_TYPE.issuperset(map(type, recent)) or sorted(set(recent)) != recent:
        raise TypeError(f"streak periods must be increasing integers, got {recent!r}")
    if len(settled) != 3:
        raise TypeError(f"expected [period, length, bonuses], got {settled!r}")
    period, run, deserved = settled
    if type(period) is not int or period < -1:
        raise TypeError(f"expected a period or -1, got {period!r}")
    found = StreakState(
        last_period,
        length,
        tuple(_int(p) for p in recent),
        (period, _int(run), _int(deserved)),
        _int(paid),
    )
    if len(_STREAKS_2) >= MEMO_LIMIT:
        _STREAKS_2.clear()
    _STREAKS_2[key] = found
    return found


def _int(value: object) -> int:
    if type(value) is int and value >= 0:  # the common case first
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a non-negative integer, got {value!r}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {value!r}")
    return value


def _strs(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"expected a list of strings, got {value!r}")
    return list(value)


_INT_TYPE: Final = frozenset({int})
_STR_TYPE: Final = frozenset({str})


def _counts_in(raw: Any) -> Mapping[str, int]:
    """``_frozen({str(k): _int(v) ...})``, checked in bulk (in C) for the dict JSON gives.

    Anything the bulk check does not accept goes the item-by-item way, which raises the
    errors from_json documents.
    """
    if type(raw) is dict:
        if not raw:
            return _EMPTY
        if len(raw) == 1:  # most milestones: one entry, nothing to sort
            ((key, value),) = raw.items()
            if type(key) is str and type(value) is int and value >= 0:
                return MappingProxyType({key: value})
        values = raw.values()
        if (
            _STR_TYPE.issuperset(map(type, raw))
            and _INT_TYPE.issuperset(map(type, values))
            and min(values) >= 0
        ):
            # What _frozen_fresh does, inline: stored mappings are already in key order.
            counts = raw.copy()
            if len(counts) < 2 or [*counts] == sorted(counts):
                return MappingProxyType(counts)
            return MappingProxyType(dict(sorted(counts.items())))
    return _frozen_fresh({str(k): _int(v) for k, v in raw.items()})


def _streaks_in(raw: Any) -> Mapping[str, StreakState]:
    """The ``streaks`` of a stored state, the common case (str keys, int fields) inline."""
    if type(raw) is dict and not raw:
        return _EMPTY
    shared = _STREAKS
    streaks = {}
    for k, v in raw.items():
        last_period = v["last_period"]
        if type(last_period) is not int or last_period < 0:
            last_period = _int(last_period)
        length = v["length"]
        if type(length) is not int or length < 0:
            length = _int(length)
        if "recent" in v:
            streaks[k if type(k) is str else str(k)] = _streak_in(last_period, length, v)
        else:  # format 1
            streaks[k if type(k) is str else str(k)] = shared[(last_period, length)]
    return _frozen_fresh(streaks)


def _names_in(raw: Any) -> Mapping[str, str]:
    """A stored ``str -> str`` mapping (milestone rule id -> event id), checked."""
    if type(raw) is not dict:
        raise TypeError(f"expected a mapping of names, got {raw!r}")
    names = {}
    for key, value in raw.items():
        if type(key) is not str or type(value) is not str:
            raise TypeError(f"expected a mapping of names, got {raw!r}")
        names[key] = value
    return _frozen_fresh(names)


def _str_set(value: object) -> frozenset[str]:
    """``frozenset(_strs(value))``, the common cases first."""
    if type(value) is list:
        if not value:
            return _NO_STRINGS
        # Checked in C: join accepts exactly the lists whose items are all str instances
        # (what _strs asks), and raises TypeError otherwise.
        try:
            "".join(value)
        except TypeError:
            pass
        else:
            return frozenset(value)
    return frozenset(_strs(value))


def _forgotten_in(raw: Any) -> Mapping[str, tuple[int, int]]:
    """RuleState.forgotten from its JSON: key -> [refund time (epoch s), points]."""
    if type(raw) is not dict:
        raise ValueError(f"forgotten must be an object, not {type(raw).__name__}")
    out: dict[str, tuple[int, int]] = {}
    for key, entry in raw.items():
        if type(key) is not str or type(entry) is not list or len(entry) != 2:
            raise ValueError(f"malformed forgotten entry {key!r}: {entry!r}")
        out[key] = (_int(entry[0]), _int(entry[1]))
    return _frozen_fresh(out)
