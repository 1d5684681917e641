"""Deciding nudges: consent, status, quiet hours and frequency caps (pure).

:class:`NudgeCause` is one trigger (a purchase, a timer's finding) for one customer and one
declared nudge; :func:`decide` turns causes into :class:`NudgeDecision`\\ s, ``sent`` or
``suppressed`` with a reason code, in order, counting what earlier decisions sent against the
caps. The caller supplies what was already sent on the days concerned
(points/nudges/store.py) and records every decision, so operations can list the suppressed
ones too. Everything is decided by the trigger's own time in the rule file's zone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from points.nudges.contract import NudgeMessage
from points.nudges.declarations import Nudge, NudgeSection

__all__ = [
    "EARNING_STATUSES",
    "NudgeCause",
    "NudgeDecision",
    "decide",
    "nudge_id_of",
    "week_start",
]

#: profile statuses that may receive nudges (a frozen or closed account gets none)
EARNING_STATUSES: Final = frozenset({"active", "dormant"})


def nudge_id_of(nudge: str, customer_id: str, cause: str) -> str:
    """The nudge's id: the same (nudge, customer, cause) always gives the same id."""
    digest = hashlib.sha256(f"{nudge}\x1f{customer_id}\x1f{cause}".encode()).hexdigest()
    return digest[:40]


def week_start(day: date) -> date:
    """The Monday of ``day``'s ISO week."""
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True, slots=True)
class NudgeCause:
    """One trigger of one declared nudge for one customer, with what the profile said then."""

    nudge: Nudge
    customer_id: str
    cause: str
    triggered_at: datetime
    consent: bool
    status: str
    data: Mapping[str, str | int | None]

    @property
    def nudge_id(self) -> str:
        return nudge_id_of(self.nudge.id, self.customer_id, self.cause)


@dataclass(frozen=True, slots=True)
class NudgeDecision:
    cause: NudgeCause
    nudge_id: str
    local_day: date
    outcome: Literal["sent", "suppressed"]
    reason_code: str | None
    reason: str | None
    message: dict[str, Any]


def decide(
    section: NudgeSection,
    zone: ZoneInfo,
    ruleset_version: str,
    causes: Iterable[NudgeCause],
    sent_per_day: Mapping[tuple[str, date], int],
) -> list[NudgeDecision]:
    """Each cause's decision, in order; ``sent_per_day``: nudges already sent per (customer,
    local day) on the days concerned (what the caps count). One decision per nudge id."""
    counts = dict(sent_per_day)
    caps = section.caps
    quiet = section.quiet_hours
    decided: list[NudgeDecision] = []
    seen: set[str] = set()
    for cause in causes:
        nudge_id = cause.nudge_id
        if nudge_id in seen:
            continue
        seen.add(nudge_id)
        local = cause.triggered_at.astimezone(zone)
        day = local.date()
        code: str | None = None
        reason: str | None = None
        if not cause.consent:
            code, reason = "no_consent", "the customer's profile gives no marketing consent"
        elif cause.status not in EARNING_STATUSES:
            code, reason = "customer_status", f"customer status {cause.status!r}"
        elif quiet is not None and quiet.contains(local.time()):
            code = "quiet_hours"
            reason = (
                f"triggered at {local:%H:%M} local, within quiet hours "
                f"{quiet.starts:%H:%M}-{quiet.ends:%H:%M} ({zone.key})"
            )
        else:
            today = counts.get((cause.customer_id, day), 0)
            monday = week_start(day)
            week = sum(
                counts.get((cause.customer_id, monday + timedelta(days=i)), 0) for i in range(7)
            )
            if today >= caps.per_day:
                code = "cap_per_day"
                reason = f"{today} nudge(s) already sent on {day} (cap {caps.per_day} a day)"
            elif week >= caps.per_week:
                code = "cap_per_week"
                reason = (
                    f"{week} nudge(s) already sent in the week of {monday} "
                    f"(cap {caps.per_week} a week)"
                )
        if code is None:
            counts[(cause.customer_id, day)] = counts.get((cause.customer_id, day), 0) + 1
        message = NudgeMessage(
            nudge_id=nudge_id,
            nudge=cause.nudge.id,
            kind=cause.nudge.kind,
            customer_id=cause.customer_id,
            cause=cause.cause,
            template=cause.nudge.template,
            offer_id=cause.nudge.offer_id,
            triggered_at=cause.triggered_at,
            local_day=day,
            ruleset_version=ruleset_version,
            data=dict(cause.data),
        ).model_dump(mode="json")
        decided.append(
            NudgeDecision(
                cause=cause,
                nudge_id=nudge_id,
                local_day=day,
                outcome="sent" if code is None else "suppressed",
                reason_code=code,
                reason=reason,
                message=message,
            )
        )
    return decided
