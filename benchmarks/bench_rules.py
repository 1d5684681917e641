"""Rules-engine benchmark: ``evaluate``, ``clawback`` and the rule-state JSON round trip.

Run: ``python -m benchmarks.bench_rules [--rules rules/default.yaml] [--seed 3]``. The last line
printed is one JSON object.

Traffic is one generated day (``simulation.traffic.generate_day``: 20,000 customers, 30,000
purchases plus refunds, reversals, producer duplicates and a few malformed messages), decoded
up front so only the rules are timed. The ``bank.transactions`` messages are then replayed in
order the way the earning worker handles them: duplicates (same event id) and malformed
messages are dropped, each purchase goes through ``evaluate`` with the customer's current state
(``state = evaluation.state``), each refund or reversal through ``clawback`` with the record of
its purchase, and at the end of every 2,000-message batch each customer the batch touched has
their state stored and loaded again (``to_json`` -> JSON text -> ``from_json``) as the worker
does through PostgreSQL. App activity (check-ins, shares) follows, evaluated the same way.

Reported:

- ``evaluate_us_p50`` / ``evaluate_per_s``: purchases only (median call, and calls per second
  of time spent inside ``evaluate``);
- ``activity_us_p50``: check-ins and shares;
- ``clawback_us_p50``: refunds and reversals;
- ``state_roundtrip_us``: median ``to_json`` + ``from_json`` of one customer's state (the JSON
  text step in between is not timed); ``state_roundtrip_us_mean`` likewise;
- ``digest``: sha256 over every evaluation's points and rule ids and every final state's
  ``to_json`` (sorted keys); ``digest_full`` adds each line's points, explanation and clawback
  policy, notes, badges, and every clawback's lines and record. Both must stay identical when
  the engine is optimised: a different digest is a change in behaviour.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from points.events import (
    Purchase,
    Refund,
    Reversal,
    bank_customer_adapter,
    bank_transaction_adapter,
    customer_activity_adapter,
)
from points.rules import (
    EarningRecord,
    Profile,
    RuleState,
    clawback,
    evaluate,
    load_ruleset,
)
from simulation.traffic import generate_day

ROOT = Path(__file__).resolve().parent.parent
BATCH = 2_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _decode(adapter: Any, messages: list[tuple[bytes, bytes]]) -> list[Any]:
    """Decoded events in topic order; malformed messages and repeated event ids dropped."""
    seen: set[str] = set()
    out: list[Any] = []
    for _, value in messages:
        try:
            event = adapter.validate_json(value)
        except ValidationError:
            continue
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        out.append(event)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_rules")
    parser.add_argument("--rules", default=str(ROOT / "rules" / "default.yaml"))
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--transactions", type=int, default=30_000)
    args = parser.parse_args(argv)

    ruleset = load_ruleset(args.rules)
    log(f"generating traffic (seed={args.seed}) ...")
    day = generate_day(seed=args.seed, customers=args.customers, transactions=args.transactions)
    profiles: dict[str, Profile] = {}
    for _, value in day.customers:
        event = bank_customer_adapter.validate_json(value)
        profiles[event.customer_id] = Profile.from_event(event)
    transactions = _decode(bank_transaction_adapter, day.transactions)
    activity = _decode(customer_activity_adapter, day.activity)
    log(f"{len(transactions)} transactions, {len(activity)} activity events, {len(profiles)} ...")

    states: dict[str, RuleState] = {}
    records: dict[str, EarningRecord] = {}
    basic = hashlib.sha256()
    full = hashlib.sha256()
    evaluate_ns: list[int] = []
    activity_ns: list[int] = []
    clawback_ns: list[int] = []
    roundtrip_ns: list[int] = []
    clock = time.perf_counter_ns

    def feed(evaluation: Any) -> None:
        basic.update(f"{evaluation.points}|{','.join(evaluation.rule_ids)}\n".encode())
        full.update(
            json.dumps(
                [
                    evaluation.event_id,
                    evaluation.points,
                    [line.to_json() for line in evaluation.lines],
                    list(evaluation.badges_awarded),
                    list(evaluation.notes),
                    evaluation.partner_id,
                ]
            ).encode()
        )

    def store_and_load(touched: set[str]) -> None:
        """The end of a batch: states go to the database as JSON and come back."""
        for customer_id in sorted(touched):
            state = states[customer_id]
            t0 = clock()
            data = state.to_json()
            t1 = clock()
            text = json.dumps(data)
            loaded = json.loads(text)
            t2 = clock()
            restored = RuleState.from_json(loaded)
            t3 = clock()
            roundtrip_ns.append((t1 - t0) + (t3 - t2))
            if restored != state:
                raise AssertionError(f"state of {customer_id} does not round-trip")
            states[customer_id] = restored

    def run(events: list[Any], timings: list[int]) -> None:
        touched: set[str] = set()
        for index, event in enumerate(events, start=1):
            customer_id = event.customer_id
            state = states.get(customer_id) or RuleState()
            if isinstance(event, Refund | Reversal):
                record = records.get(event.original_event_id)
                if record is not None and record.customer_id == customer_id:
                    t0 = clock()
                    result = clawback(ruleset, record, event, state)
                    clawback_ns.append(clock() - t0)
                    states[customer_id] = result.state
                    records[record.event_id] = result.record
                    touched.add(customer_id)
                    basic.update(f"c{result.points}|{','.join(result.rule_ids)}\n".encode())
                    full.update(
                        json.dumps(
                            [
                                result.event_id,
                                [line.to_json() for line in result.lines],
                                list(result.badges_revoked),
                                list(result.notes),
                                result.record.to_json(),
                            ]
                        ).encode()
                    )
            else:
                profile = profiles[customer_id]
                t0 = clock()
                evaluation = evaluate(ruleset, event, profile, state, now=event.occurred_at)
                timings.append(clock() - t0)
                states[customer_id] = evaluation.state
                touched.add(customer_id)
                if isinstance(event, Purchase):
                    records[event.event_id] = evaluation.record()
                feed(evaluation)
            if index % BATCH == 0:
                store_and_load(touched)
                touched = set()
        store_and_load(touched)

    gc.collect()
    started = time.perf_counter()
    run(transactions, evaluate_ns)
    run(activity, activity_ns)
    elapsed = time.perf_counter() - started

    for customer_id in sorted(states):
        text = json.dumps(states[customer_id].to_json(), sort_keys=True)
        basic.update(f"{customer_id}={text}\n".encode())
        full.update(f"{customer_id}={text}\n".encode())

    def p50_us(samples: list[int]) -> float:
        return round(statistics.median(samples) / 1000, 2) if samples else 0.0

    result = {
        "rules": Path(args.rules).name,
        "purchases": len(evaluate_ns),
        "activity_events": len(activity_ns),
        "clawbacks": len(clawback_ns),
        "state_roundtrips": len(roundtrip_ns),
        "evaluate_us_p50": p50_us(evaluate_ns),
        "evaluate_us_p99": round(sorted(evaluate_ns)[int(len(evaluate_ns) * 0.99)] / 1000, 2),
        "evaluate_per_s": round(len(evaluate_ns) / (sum(evaluate_ns) / 1e9)),
        "activity_us_p50": p50_us(activity_ns),
        "clawback_us_p50": p50_us(clawback_ns),
        "state_roundtrip_us": p50_us(roundtrip_ns),
        "state_roundtrip_us_mean": round(statistics.fmean(roundtrip_ns) / 1000, 2),
        "replay_s": round(elapsed, 2),
        "digest": basic.hexdigest(),
        "digest_full": full.hexdigest(),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
