"""One consumed batch → points, in one database transaction.

1. decode and validate every message (bad ones become dead letters);
2. record the valid ones in the inbox; only ids that were not there before go on;
3. load the rule state and profiles of the batch's customers that the worker does not hold in
   memory (points/earning/working_set.py; versioned, so a stale copy is caught at write
   time), and the earning records a refund needs;
4. evaluate the rules event by event, in partition order (pure functions, in memory);
5. write the ledger operations (``points.ledger.apply_batch``), the new rule state (only over
   the version it was read at), the earning records, profile changes, parked refunds and one
   ``points.ledger`` outbox bundle row;
6. commit. The caller acks the batch's offsets only after this returns.

Steps 2 and 6 (inbox, dead letters, outbox, one transaction) are the consumed batch's unit of
work, :class:`points.consumed_batch.ConsumedBatch`, shared with the partner events' consumer.

A replayed batch finds its ids in the inbox and changes nothing, so a crash anywhere is safe.
A refund whose purchase has not been seen yet is parked and applied right after the purchase.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from points.consumed_batch import ConsumedBatch
from points.dead_letters import RejectedMessage
from points.decoding import Decoded, Decoder, RawMessage, classify
from points.earning import store
from points.earning.working_set import CachedCustomer, StaleWorkingSet, WorkingSet
from points.events import (
    ChallengeOptIn,
    CheckIn,
    CustomerOnboarded,
    CustomerProfile,
    Purchase,
    Refund,
    Reversal,
    Share,
    bank_customer_adapter,
    bank_transaction_adapter,
    customer_activity_adapter,
)
from points.inbox import AcceptedEvent
from points.ledger import apply_batch
from points.ledger.model import Applied, Clawback, Earn, Reason, Rejected
from points.nudges.policy import NudgeCause
from points.nudges.store import record_nudges
from points.nudges.triggers import NudgeRules
from points.outbox import bundle_row
from points.refusals import Refusal, record_refusals
from points.rules import (
    EarningRecord,
    Profile,
    RulesError,
    RuleSet,
    RuleState,
    clawback,
    evaluate,
    load_ruleset,
)
from points.settings import Settings, TopicNames

__all__ = ["BatchOutcome", "EarningService", "earn_key"]

log = logging.getLogger(__name__)

EarningInput = Purchase | CheckIn | Share | ChallengeOptIn


def earn_key(event_id: str) -> str:
    """The ledger idempotency key of the points an event earned."""
    return f"earn:{event_id}"


def clawback_key(event_id: str, part: int = 0) -> str:
    """The ledger key of a refund's clawback: part 0 takes from the refunded purchase's
    earning, parts 1, 2, ... from the earnings that paid milestones the refund undoes."""
    return f"clawback:{event_id}" if part == 0 else f"clawback:{event_id}#{part}"


def refusal_key(event_id: str) -> str:
    """The refusals-table key of a refund's clawback refused (the own part's ledger key; a
    refused part's refusal takes that part's ledger key, see _clawback_refusals)."""
    return clawback_key(event_id)


def late_key(event_id: str) -> str:
    """The refusals-table key of an event too late for a time-based rule."""
    return f"late:{event_id}"


@dataclass(slots=True)
class BatchOutcome:
    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    points_earned: int = 0
    points_clawed_back: int = 0
    parked: int = 0
    ledger_rejections: int = 0
    refusals: int = 0
    nudges_sent: int = 0
    nudges_suppressed: int = 0
    rejected_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Plan:
    """Everything one batch will write, built in memory before any write."""

    operations: list[Earn | Clawback] = field(default_factory=list)
    # the customer each operation belongs to, for the points.ledger notification
    op_customers: list[str] = field(default_factory=list)
    # customer -> (state JSON, the version it is written as)
    states: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    # what the working set learns once the batch commits
    remembered: dict[str, CachedCustomer] = field(default_factory=dict)
    records: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    # records of purchases first seen in this batch (inserted, never replacing a row)
    new_records: set[str] = field(default_factory=set)
    profiles: dict[str, tuple[dict[str, Any], str | None]] = field(default_factory=dict)
    parked: list[dict[str, Any]] = field(default_factory=list)
    unparked: list[str] = field(default_factory=list)
    late_rejects: list[RejectedMessage] = field(default_factory=list)
    # refusals known while planning (late events, untraceable milestones)
    refusals: list[Refusal] = field(default_factory=list)
    # operation index -> the refund whose clawback (part) it is, to record a ledger refusal
    clawback_of: dict[int, Refund | Reversal] = field(default_factory=dict)
    # nudges the batch's purchases triggered (points/nudges), decided at write time
    nudges: list[NudgeCause] = field(default_factory=list)


def _profile_to_json(profile: Profile) -> dict[str, Any]:
    return {
        "segment": profile.segment,
        "joined_at": profile.joined_at.isoformat(),
        "status": profile.status,
        "birth_year": profile.birth_year,
        "marketing_consent": profile.marketing_consent,
    }


def _profile_from_json(customer_id: str, data: dict[str, Any]) -> Profile:
    return Profile(
        customer_id=customer_id,
        segment=str(data["segment"]),
        joined_at=datetime.fromisoformat(str(data["joined_at"])),
        status=str(data.get("status") or "active"),
        birth_year=data.get("birth_year"),
        marketing_consent=data.get("marketing_consent") is True,
    )


class EarningService:
    """Applies consumed batches from bank.transactions, customer.activity and bank.customers."""

    def __init__(
        self,
        engine: Engine,
        ruleset: RuleSet,
        topics: TopicNames,
        *,
        lot_lifetime_days: int = 365,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        working_set_capacity: int = 200_000,
    ) -> None:
        self._engine = engine
        self._ruleset = ruleset
        self._topics = topics
        self._lot_lifetime = timedelta(days=lot_lifetime_days)
        self._clock = clock
        self._working_set = WorkingSet(working_set_capacity)
        self._nudges = NudgeRules(ruleset)
        self._decoders: dict[str, Decoder] = {
            topics.bank_transactions: bank_transaction_adapter,
            topics.customer_activity: customer_activity_adapter,
            topics.bank_customers: bank_customer_adapter,
        }

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> EarningService:
        """The service a worker (or one of its lane processes) runs, as configured."""
        return cls(
            engine,
            load_ruleset(settings.rules.path),
            settings.kafka.topics,
            lot_lifetime_days=settings.rules.lot_lifetime_days,
            working_set_capacity=settings.worker.working_set_capacity,
        )

    @property
    def topics(self) -> list[str]:
        return list(self._decoders)

    def forget_working_set(self) -> None:
        """Drop what this worker remembers of its customers (say, on a rebalance): it is read
        from the database again as customers come back."""
        self._working_set.clear()

    def process(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        """Apply one consumed batch in one transaction (see the module docstring)."""
        try:
            return self._process(messages)
        except StaleWorkingSet as stale:
            # Another worker wrote one of these customers (a rebalance came and went): the
            # transaction rolled back; run the batch again from the database, under row locks.
            log.info("working set was stale (%s); batch retried from the database", stale)
            self._working_set.clear()
            return self._process(messages)
        except BaseException:
            # The outcome of a failed commit is unknown: trust nothing remembered.
            self._working_set.clear()
            raise

    def _process(self, messages: Sequence[RawMessage]) -> BatchOutcome:
        decoded, rejected = classify(messages, self._decoders)
        outcome = BatchOutcome(messages=len(messages))
        now = self._clock()
        accepted = [d.accepted for d in decoded]
        with ConsumedBatch.begin(self._engine, dlq_topic=self._topics.points_dlq) as batch:
            conn = batch.conn
            # bulk: a concurrent writer of the same ids makes this raise; the caller retries.
            fresh = batch.receive(decoded, accepted, rejected, bulk=True)
            plan = self._plan(conn, fresh, now)
            results = apply_batch(conn, plan.operations, now=now) if plan.operations else []
            batch.publish(self._ledger_notifications(plan, results, outcome))
            refused = [*plan.refusals, *_clawback_refusals(plan, results, now)]
            outcome.refusals = record_refusals(conn, refused)
            written = store.save_states_versioned(conn, plan.states)
            if written != len(plan.states):
                raise StaleWorkingSet(f"{len(plan.states) - written} customers moved on")
            store.save_records(conn, plan.records, new_ids=plan.new_records)
            store.save_profiles(conn, plan.profiles)
            store.park(conn, plan.parked)
            store.delete_parked(conn, plan.unparked)
            batch.dead_letter(plan.late_rejects)
            if plan.nudges:
                nudged = record_nudges(
                    conn, self._ruleset.nudges, self._ruleset.zone, self._ruleset.version,
                    plan.nudges, topic=self._topics.customer_nudges, now=now,
                )
                outcome.nudges_sent, outcome.nudges_suppressed = nudged.sent, nudged.suppressed
        self._working_set.put(plan.remembered)
        outcome.stored = len(fresh)
        outcome.duplicates = len(accepted) - len(fresh)
        outcome.rejected = len(rejected) + len(plan.late_rejects)
        outcome.parked = len(plan.parked)
        for r in [*rejected, *plan.late_rejects]:
            outcome.rejected_reasons[r.reason_code] = (
                outcome.rejected_reasons.get(r.reason_code, 0) + 1
            )
        return outcome

    # -- planning: pure given what was loaded ------------------------------------------------

    def _plan(self, conn: Any, fresh: list[Decoded], now: datetime) -> _Plan:
        plan = _Plan()
        if not fresh:
            return plan
        customers = {d.accepted.customer_id for d in fresh}
        held, missing = self._working_set.split(customers)
        versions = {c: entry.version for c, entry in held.items()}
        states = {c: entry.state for c, entry in held.items() if entry.state is not None}
        profiles = {c: entry.profile for c, entry in held.items() if entry.profile is not None}
        for c, (raw_state, version) in store.load_states_versioned(conn, missing).items():
            states[c] = RuleState.from_json(raw_state)
            versions[c] = version
        for c, raw_profile in store.load_profiles(conn, missing).items():
            profiles[c] = _profile_from_json(c, raw_profile)
        originals = {
            d.event.original_event_id for d in fresh if isinstance(d.event, Refund | Reversal)
        }
        records = {
            k: EarningRecord.from_json(v) for k, v in store.load_records(conn, originals).items()
        }
        purchase_ids = [d.accepted.event_id for d in fresh if isinstance(d.event, Purchase)]
        waiting: dict[str, list[Refund | Reversal]] = {}
        for row in store.load_parked(conn, purchase_ids):
            waiting.setdefault(row["waiting_for"], []).append(
                bank_transaction_adapter.validate_python(row["payload"])  # type: ignore[arg-type]
            )

        nudge_on_purchase = self._nudges.on_purchase

        def state_of(customer_id: str) -> RuleState:
            return states.get(customer_id) or RuleState()

        def profile_of(customer_id: str) -> Profile:
            return profiles.get(customer_id) or Profile.unknown(customer_id)

        def apply_refund(event: Refund | Reversal, decoded: Decoded | None) -> None:
            record = records.get(event.original_event_id)
            if record is None:
                # Its purchase may still come later in this very batch: wait in memory too.
                waiting.setdefault(event.original_event_id, []).append(event)
                plan.parked.append(
                    {
                        "event_id": event.event_id,
                        "waiting_for": event.original_event_id,
                        "customer_id": event.customer_id,
                        "payload": event.model_dump(mode="json"),
                    }
                )
                return
            try:
                result = clawback(self._ruleset, record, event, state_of(event.customer_id))
            except RulesError as exc:
                if decoded is not None:
                    plan.late_rejects.append(_late_reject(decoded.accepted, exc))
                else:
                    log.error("parked refund %s refused: %s", event.event_id, exc)
                return
            states[event.customer_id] = result.state
            records[event.original_event_id] = result.record
            plan.records[event.original_event_id] = (record.customer_id, result.record.to_json())
            # One ledger clawback per earning taken from (the refunded purchase's, and each
            # purchase that paid a milestone the refund undoes): one refused never stops the
            # others, and each refused one is recorded (_clawback_refusals).
            extra = 0
            for part in result.parts:
                if part.points <= 0:
                    continue
                own = part.earning_event_id == event.original_event_id
                if not own:
                    extra += 1
                plan.clawback_of[len(plan.operations)] = event
                plan.operations.append(
                    Clawback(
                        idempotency_key=clawback_key(event.event_id, 0 if own else extra),
                        earning_key=earn_key(part.earning_event_id),
                        amount=part.points,
                        reason=Reason(
                            rule_ids=part.rule_ids,
                            ruleset_version=result.ruleset_version,
                            source_event=event.event_id,
                        ),
                    )
                )
                plan.op_customers.append(event.customer_id)
            if result.untraced:
                plan.refusals.append(_untraced_refusal(event, result.untraced, now))

        for item in fresh:
            event = item.event
            customer_id = item.accepted.customer_id
            if isinstance(event, CustomerProfile | CustomerOnboarded):
                profile = Profile.from_event(event)
                profiles[customer_id] = profile
                code = event.referral_code if isinstance(event, CustomerOnboarded) else None
                plan.profiles[customer_id] = (_profile_to_json(profile), None)
                # Bump the customer's state version too: it is what vouches for a remembered
                # profile (points/earning/working_set.py).
                states.setdefault(customer_id, state_of(customer_id))
                if code:
                    log.info("customer %s onboarded with referral code %s", customer_id, code)
                continue
            if isinstance(event, Refund | Reversal):
                apply_refund(event, item)
                continue
            if not isinstance(event, EarningInput):
                plan.late_rejects.append(
                    _late_reject(
                        item.accepted, TypeError(f"{item.accepted.event_type} does not earn")
                    )
                )
                continue
            before = state_of(customer_id)
            profile = profile_of(customer_id)
            try:
                evaluation = evaluate(self._ruleset, event, profile, before, now=now)
            except RulesError as exc:
                plan.late_rejects.append(_late_reject(item.accepted, exc))
                continue
            states[customer_id] = evaluation.state
            if nudge_on_purchase and isinstance(event, Purchase):
                plan.nudges += self._nudges.purchase_nudges(
                    customer_id, event.occurred_at, profile, before, evaluation.state
                )
            if evaluation.too_late_for:
                plan.refusals.append(_late_refusal(event, evaluation.too_late_for, now))
            if isinstance(event, Purchase):
                record = evaluation.record()
                records[event.event_id] = record
                plan.records[event.event_id] = (customer_id, record.to_json())
                plan.new_records.add(event.event_id)
            if evaluation.points > 0:
                plan.operations.append(
                    Earn(
                        idempotency_key=earn_key(event.event_id),
                        customer_id=customer_id,
                        amount=evaluation.points,
                        expires_at=event.occurred_at.astimezone(UTC) + self._lot_lifetime,
                        reason=Reason(
                            rule_ids=evaluation.rule_ids,
                            ruleset_version=evaluation.ruleset_version,
                            source_event=event.event_id,
                        ),
                    )
                )
                plan.op_customers.append(customer_id)
            for refund in waiting.pop(event.event_id, []):
                plan.unparked.append(refund.event_id)
                apply_refund(refund, None)

        for c in customers:
            state = states.get(c)
            version = versions.get(c, 0)
            if state is not None:
                version += 1
                plan.states[c] = (state.to_json(), version)
            plan.remembered[c] = CachedCustomer(version, state, profiles.get(c))
        return plan

    def _ledger_notifications(
        self, plan: _Plan, results: Sequence[Any], outcome: BatchOutcome
    ) -> list[dict[str, Any]]:
        """points.ledger messages for every entry this batch committed: one outbox bundle row
        (points/outbox.py), which the relay sends as one message per entry."""
        messages: list[tuple[str, dict[str, Any], str]] = []
        for op, customer_id, result in zip(
            plan.operations, plan.op_customers, results, strict=True
        ):
            if isinstance(result, Rejected):
                outcome.ledger_rejections += 1
                if not isinstance(op, Clawback):  # a refused clawback is logged as a refusal
                    log.warning("ledger refused %s: %s", op.idempotency_key, result)
                continue
            if not isinstance(result, Applied):
                continue  # already applied by an earlier run: its notification exists already
            earned = isinstance(op, Earn)
            points = op.amount or 0
            if earned:
                outcome.points_earned += points
            else:
                outcome.points_clawed_back += points
            reason = op.reason
            body = {
                "entry_key": op.idempotency_key,
                "kind": "earn" if earned else "clawback",
                "customer_id": customer_id,
                "points": points if earned else -points,
                "rule_ids": list(reason.rule_ids),
                "ruleset_version": reason.ruleset_version,
                "source_event": reason.source_event,
            }
            messages.append((customer_id, body, f"ledger:{op.idempotency_key}"))
        if not messages:
            return []
        return [bundle_row(self._topics.points_ledger, messages)]


def _clawback_refusals(plan: _Plan, results: Sequence[Any], now: datetime) -> list[Refusal]:
    """A refusal per clawback part the ledger refused, and one WARNING line per refund.

    Each refusal's dedupe key is the refused ledger entry's key: ``clawback:<refund id>`` for
    the refunded purchase's own part (the convention), ``clawback:<refund id>#<n>`` for a
    milestone taken from another purchase. So a refund whose own part posted and whose
    milestone part was refused has one outcome per entry, and ``audit`` pairs every rejected
    entry with its refusal. A replay records nothing twice (the key is unique).
    """
    out: list[Refusal] = []
    by_refund: dict[str, tuple[Refund | Reversal, list[str], int]] = {}
    for index, refund in plan.clawback_of.items():
        result = results[index]
        if not isinstance(result, Rejected):
            continue
        op = plan.operations[index]
        assert isinstance(op, Clawback)
        reason = (
            f"ledger refused to take back {op.amount} points ({', '.join(op.reason.rule_ids)}) "
            f"from {op.earning_key}: {result.error}"
        )
        out.append(
            Refusal(
                dedupe_key=op.idempotency_key,
                source="earning",
                subject="clawback",
                reason_code=result.code,
                reason=reason,
                at=now,
                subject_id=refund.event_id,
                event_id=refund.event_id,
                customer_id=refund.customer_id,
            )
        )
        _, reasons, points = by_refund.get(refund.event_id) or (refund, [], 0)
        reasons.append(reason)
        by_refund[refund.event_id] = (refund, reasons, points + (op.amount or 0))
    for refund, reasons, points in by_refund.values():
        log.warning(
            "refund %s of %s (customer %s): %s points not clawed back (the rest was): %s",
            refund.event_id,
            refund.original_event_id,
            refund.customer_id,
            points,
            "; ".join(reasons),
        )
    return out


def _untraced_refusal(refund: Refund | Reversal, lines: Sequence[Any], now: datetime) -> Refusal:
    """A milestone the refund undoes whose paying purchase is unknown (state written before
    milestones named it): kept by the customer, and said so here."""
    what = ", ".join(f"{line.rule_id} ({line.points} points)" for line in lines)
    log.warning(
        "refund %s (customer %s): milestone not clawed back, its purchase is unknown: %s",
        refund.event_id,
        refund.customer_id,
        what,
    )
    return Refusal(
        dedupe_key=f"{refusal_key(refund.event_id)}#untraced",
        source="earning",
        subject="clawback",
        reason_code="milestone_payer_unknown",
        reason=f"milestone no longer met but kept: the purchase that paid it is not known: {what}",
        at=now,
        subject_id=refund.event_id,
        event_id=refund.event_id,
        customer_id=refund.customer_id,
    )


def _late_refusal(event: EarningInput, decided: Sequence[str], now: datetime) -> Refusal:
    """An event too late for some time-based rules: they were decided without it."""
    streaks = [rule_id for rule_id in decided if rule_id != "caps"]
    parts = []
    if streaks:
        parts.append(
            f"not counted in streak {', '.join(streaks)}: its period is older than the "
            "streak's lateness window"
        )
    if "caps" in decided:
        parts.append("its day's or month's cap counters are no longer kept: capped rules earn 0")
    log.info("event %s (customer %s) too late: %s", event.event_id, event.customer_id, parts)
    return Refusal(
        dedupe_key=late_key(event.event_id),
        source="earning",
        subject="late_event",
        reason_code="beyond_lateness_window",
        reason=f"occurred_at {event.occurred_at.isoformat()}: " + "; ".join(parts),
        at=now,
        subject_id=event.event_id,
        event_id=event.event_id,
        customer_id=event.customer_id,
    )


def _late_reject(accepted: AcceptedEvent, error: Exception) -> RejectedMessage:
    """An event that passed its contract but that the rules refuse (e.g. a refund for another
    customer's purchase): dead-lettered with the reason, in the same transaction."""
    code = getattr(error, "code", None) or "rule_refused"
    return RejectedMessage(
        topic=accepted.topic,
        partition=accepted.partition,
        offset=accepted.offset,
        reason_code=str(code),
        reason=str(error),
        key=accepted.customer_id.encode(),
        value=accepted.raw,
    )
