"""Ledger behaviour, one suite run on SQLite and on PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from points.errors import (
    AlreadyReversed,
    ClawbackExceedsEarning,
    HoldAlreadyResolved,
    HoldExpired,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAmount,
    InvalidRequest,
    NotReversible,
    UnknownEntry,
)
from points.ledger import (
    AccountRef,
    Adjust,
    AlreadyApplied,
    Applied,
    Clawback,
    Earn,
    ExpireHolds,
    ExpireLots,
    Hold,
    Operation,
    PostHold,
    Reason,
    Rejected,
    Reverse,
    Spend,
    VoidHold,
    account_balance,
    apply,
    apply_batch,
    customer_holds,
    customer_lots,
    entry_by_key,
    statement,
    verify,
)
from points.ledger.service import OPTIMISTIC_BATCH_MIN
from tests.integration.ledger.support import LATER, NOW, assert_clean, balance, run

SOON = NOW + timedelta(days=10)
OPERATOR = Reason(operator="ops-ann", note="goodwill, ticket 42")


def rejected(result: object, error: type) -> Rejected:
    assert isinstance(result, Rejected), result
    assert isinstance(result.error, error), result.error
    return result


def hot(engine: Engine, ref: AccountRef) -> int:
    with engine.connect() as conn:
        return account_balance(conn, ref)


# --- earn and idempotency ---------------------------------------------------------------


def test_earn_credits_the_wallet_from_issuance_and_creates_a_lot(engine: Engine) -> None:
    """An earning adds to the wallet, debits the bank's issuance, and makes one lot."""
    (result,) = run(engine, Earn("e1", "alice", 120, SOON))
    assert isinstance(result, Applied)
    assert balance(engine, "alice").available == 120
    assert hot(engine, AccountRef.issuance("bank")) == -120
    with engine.connect() as conn:
        lots = customer_lots(conn, "alice")
    assert [(lot.lot_id, lot.amount, lot.remaining, lot.expires_at) for lot in lots] == [
        (result.entry_id, 120, 120, SOON)
    ]


def test_replaying_the_same_request_returns_the_original_entry(engine: Engine) -> None:
    """Same key, same request: AlreadyApplied with the first entry id; nothing changes."""
    (first,) = run(engine, Earn("e1", "alice", 10, SOON))
    (again,) = run(engine, Earn("e1", "alice", 10, SOON))
    assert isinstance(first, Applied)
    assert again == AlreadyApplied("e1", first.entry_id)
    assert balance(engine, "alice").available == 10


def test_same_key_with_a_different_request_is_an_idempotency_conflict(engine: Engine) -> None:
    """Same key, different fields: IdempotencyConflict, and the ledger is untouched."""
    run(engine, Earn("e1", "alice", 10, SOON))
    (conflict,) = run(engine, Earn("e1", "alice", 11, SOON))
    assert rejected(conflict, IdempotencyConflict).entry_id is None
    assert balance(engine, "alice").available == 10


def test_duplicates_inside_one_batch_are_applied_once(engine: Engine) -> None:
    """A key repeated in a batch: the first applies, the copy is AlreadyApplied, a changed
    copy is a conflict."""
    results = run(engine, Earn("e1", "alice", 10, SOON), Earn("e1", "alice", 10, SOON),
                  Earn("e1", "alice", 99, SOON))
    assert isinstance(results[0], Applied)
    assert results[1] == AlreadyApplied("e1", results[0].entry_id)
    rejected(results[2], IdempotencyConflict)
    assert balance(engine, "alice").available == 10


def test_a_rejection_is_remembered_and_replayed(engine: Engine) -> None:
    """An insufficient spend is stored; replaying it later returns the same refusal even
    after the wallet could cover it."""
    (first,) = run(engine, Spend("s1", "alice", 50))
    stored = rejected(first, InsufficientPoints)
    run(engine, Earn("e1", "alice", 100, SOON))
    (again,) = run(engine, Spend("s1", "alice", 50))
    replay = rejected(again, InsufficientPoints)
    assert replay.replayed and replay.entry_id == stored.entry_id
    assert replay.message == stored.message
    assert balance(engine, "alice").available == 100


# Batches of OPTIMISTIC_BATCH_MIN or more skip the key lookup on PostgreSQL (a savepoint and
# ON CONFLICT DO NOTHING find stored keys instead): the same answers, whatever the batch size.


def earn_batch(prefix: str, count: int = OPTIMISTIC_BATCH_MIN) -> list[Operation]:
    return [Earn(f"{prefix}{i}", f"c{i % 5}", 10, SOON) for i in range(count)]


def test_a_large_batch_with_stored_keys_answers_like_a_small_one(engine: Engine) -> None:
    """One large batch mixing new keys, a replay, a conflict and a remembered refusal: each
    gets the answer it would get alone, and nothing of the refused attempt remains."""
    (earned,) = run(engine, Earn("old-earn", "alice", 10, SOON))
    (refused,) = run(engine, Spend("old-spend", "alice", 500))
    assert isinstance(earned, Applied)
    stored = rejected(refused, InsufficientPoints)
    batch = [
        *earn_batch("n"),
        Earn("old-earn", "alice", 10, SOON),       # replay
        Earn("old-earn", "alice", 11, SOON),       # same key, other request
        Earn("more", "alice", 1000, SOON),
        Spend("old-spend", "alice", 500),          # refused before: stays refused
    ]
    results = run(engine, *batch)
    assert all(isinstance(r, Applied) for r in results[:OPTIMISTIC_BATCH_MIN])
    assert results[OPTIMISTIC_BATCH_MIN] == AlreadyApplied("old-earn", earned.entry_id)
    rejected(results[OPTIMISTIC_BATCH_MIN + 1], IdempotencyConflict)
    assert isinstance(results[OPTIMISTIC_BATCH_MIN + 2], Applied)
    replay = rejected(results[OPTIMISTIC_BATCH_MIN + 3], InsufficientPoints)
    assert replay.replayed and replay.entry_id == stored.entry_id
    assert balance(engine, "alice").available == 1010
    assert sum(balance(engine, f"c{i}").available for i in range(5)) == 10 * OPTIMISTIC_BATCH_MIN
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
    assert count == 2 + OPTIMISTIC_BATCH_MIN + 1


def test_replaying_a_large_batch_changes_nothing(engine: Engine) -> None:
    """Delivering a whole large batch again: every operation AlreadyApplied, same ids."""
    batch = [*earn_batch("r"), Spend("r-spend", "c0", 5), Spend("r-refused", "c1", 10**6)]
    first = run(engine, *batch)
    again = run(engine, *batch)
    for before, after in zip(first, again, strict=True):
        assert after.entry_id == before.entry_id
        if isinstance(before, Applied):
            assert after == AlreadyApplied(before.idempotency_key, before.entry_id)
        else:
            assert isinstance(after, Rejected) and after.replayed
    assert balance(engine, "c0").available == 10 * len(range(0, OPTIMISTIC_BATCH_MIN, 5)) - 5


def test_a_large_batch_sees_an_earlier_batch_of_the_same_transaction(engine: Engine) -> None:
    """Two large batches in one transaction, the second repeating a key of the first: the
    repeat is a replay, and the first batch's writes survive the second's retried attempt."""
    with engine.begin() as conn:
        first = apply_batch(conn, earn_batch("t"), now=NOW)
        second = apply_batch(conn, [*earn_batch("u"), Earn("t0", "c0", 10, SOON)], now=NOW)
    assert isinstance(first[0], Applied)
    assert second[-1] == AlreadyApplied("t0", first[0].entry_id)
    assert all(isinstance(r, Applied) for r in second[:-1])
    assert_clean(engine)
    assert sum(balance(engine, f"c{i}").available for i in range(5)) == 20 * OPTIMISTIC_BATCH_MIN


def test_apply_raises_the_typed_error_after_storing_it(engine: Engine) -> None:
    """The single-operation API raises the rejection; the refusal is still remembered."""
    with engine.begin() as conn, pytest.raises(InsufficientPoints):
        apply(conn, Spend("s1", "alice", 1), now=NOW)
    with engine.begin() as conn:
        (result,) = apply_batch(conn, [Spend("s1", "alice", 1)], now=NOW)
    assert rejected(result, InsufficientPoints).replayed


@pytest.mark.parametrize("amount", [0, -5, 10**13])
def test_amounts_must_be_positive_and_bounded(engine: Engine, amount: int) -> None:
    """Zero, negative and over-limit amounts are refused as InvalidAmount."""
    (result,) = run(engine, Earn("e", "alice", amount, SOON))
    rejected(result, InvalidAmount)
    assert balance(engine, "alice").available == 0


def test_times_must_carry_a_zone(engine: Engine) -> None:
    """A naive expiry is refused: the ledger never guesses a time zone."""
    (result,) = run(engine, Earn("e", "alice", 5, SOON.replace(tzinfo=None)))
    rejected(result, InvalidRequest)


def test_the_callers_transaction_owns_the_commit(engine: Engine) -> None:
    """apply_batch never commits: rolling back the caller's transaction leaves nothing."""
    with engine.connect() as conn, conn.begin() as tx:
        apply_batch(conn, [Earn("e1", "alice", 10, SOON)], now=NOW)
        tx.rollback()
    assert balance(engine, "alice").available == 0
    (result,) = run(engine, Earn("e1", "alice", 10, SOON))
    assert isinstance(result, Applied)


def test_the_reason_is_stored_on_the_entry(engine: Engine) -> None:
    """Rule ids, rule-set version, campaign and source event come back from the entry."""
    reason = Reason(rule_ids=("base", "weekend"), ruleset_version="7", campaign="spring",
                    source_event="tx-9")
    run(engine, Earn("e1", "alice", 10, SOON, reason=reason))
    with engine.connect() as conn:
        entry = entry_by_key(conn, "e1")
    assert entry is not None and entry.reason == reason and entry.kind == "earn"
    assert entry.legs == ((AccountRef.issuance("bank"), AccountRef.wallet("bank", "alice"),
                           10),)


# --- spend ------------------------------------------------------------------------------


def test_spend_consumes_the_soonest_expiring_lots_first(engine: Engine) -> None:
    """FIFO by expiry: the lot that expires first is used first, then the next."""
    late, early = run(engine, Earn("late", "alice", 100, LATER), Earn("early", "alice", 30, SOON))
    run(engine, Spend("s1", "alice", 50))
    with engine.connect() as conn:
        lots = {lot.lot_id: lot.remaining for lot in customer_lots(conn, "alice",
                                                                   include_spent=True)}
    assert isinstance(late, Applied) and isinstance(early, Applied)
    assert lots == {early.entry_id: 0, late.entry_id: 80}
    assert balance(engine, "alice").available == 80
    assert hot(engine, AccountRef.issuance("bank")) == -80


def test_spend_at_a_partner_credits_its_clearing_account(engine: Engine) -> None:
    """Spending at a partner moves points to that partner's clearing account."""
    run(engine, Earn("e1", "alice", 40, SOON), Spend("s1", "alice", 15, to_partner="ride"))
    assert hot(engine, AccountRef.clearing("bank", "ride")) == 15


def test_earn_and_spend_in_one_batch_see_each_other(engine: Engine) -> None:
    """Operations of one batch apply in order: a spend can use points earned before it."""
    results = run(engine, Earn("e1", "alice", 10, SOON), Spend("s1", "alice", 10),
                  Spend("s2", "alice", 1))
    assert [type(r) for r in results] == [Applied, Applied, Rejected]
    assert balance(engine, "alice").available == 0


# --- holds ------------------------------------------------------------------------------


def test_hold_moves_points_to_held_and_post_sends_them_on(engine: Engine) -> None:
    """A hold takes points out of the available balance; posting sends them to the
    partner's clearing account."""
    run(engine, Earn("e1", "alice", 100, SOON),
        Hold("h1", "alice", 60, NOW + timedelta(hours=1), to_partner="ride"))
    assert balance(engine, "alice").available == 40
    assert balance(engine, "alice").held == 60
    (post,) = run(engine, PostHold("p1", "h1"))
    assert isinstance(post, Applied)
    assert balance(engine, "alice").held == 0
    assert hot(engine, AccountRef.clearing("bank", "ride")) == 60


def test_partial_post_returns_the_rest_to_the_wallet_and_its_lots(engine: Engine) -> None:
    """Posting part of a hold returns the remainder to the wallet (and to its lots)."""
    run(engine, Earn("e1", "alice", 100, SOON),
        Hold("h1", "alice", 60, NOW + timedelta(hours=1), to_partner="ride"),
        PostHold("p1", "h1", 25))
    assert balance(engine, "alice").available == 75
    assert balance(engine, "alice").held == 0
    with engine.connect() as conn:
        (lot,) = customer_lots(conn, "alice")
        (view,) = customer_holds(conn, "alice", pending_only=False)
    assert lot.remaining == 75
    assert (view.status, view.posted) == ("posted", 25)


def test_void_returns_the_hold_and_a_hold_resolves_at_most_once(engine: Engine) -> None:
    """Void gives the points back; a later post or void is HoldAlreadyResolved."""
    run(engine, Earn("e1", "alice", 100, SOON),
        Hold("h1", "alice", 60, NOW + timedelta(hours=1)), VoidHold("v1", "h1"))
    assert balance(engine, "alice").available == 100
    post, void = run(engine, PostHold("p1", "h1"), VoidHold("v2", "h1"))
    rejected(post, HoldAlreadyResolved)
    rejected(void, HoldAlreadyResolved)


def test_a_hold_past_its_timeout_cannot_be_posted_and_is_voided_by_expiry(
    engine: Engine,
) -> None:
    """Post after the timeout is HoldExpired; ExpireHolds voids every timed-out hold."""
    run(engine, Earn("e1", "alice", 100, SOON),
        Hold("h1", "alice", 30, NOW + timedelta(minutes=5)),
        Hold("h2", "alice", 20, NOW + timedelta(days=1)))
    later = NOW + timedelta(hours=1)
    (post,) = run(engine, PostHold("p1", "h1"), now=later)
    rejected(post, HoldExpired)
    (expiry,) = run(engine, ExpireHolds("x1", as_of=later), now=later)
    assert isinstance(expiry, Applied)
    assert balance(engine, "alice").available == 80
    assert balance(engine, "alice").held == 20
    with engine.connect() as conn:
        statuses = {h.hold_key: h.status for h in customer_holds(conn, "alice",
                                                                  pending_only=False)}
    assert statuses == {"h1": "expired", "h2": "pending"}


def test_posting_an_unknown_hold_is_hold_not_found(engine: Engine) -> None:
    """A post for a key that names no hold is refused (and the refusal remembered)."""
    run(engine, Earn("e1", "alice", 10, SOON))
    post, void = run(engine, PostHold("p1", "nope"), VoidHold("v1", "e1"))
    rejected(post, HoldNotFound)
    rejected(void, HoldNotFound)


# --- reverse ----------------------------------------------------------------------------


def test_reversing_an_earning_removes_its_points_and_its_lot(engine: Engine) -> None:
    """The reversal is a new entry pointing at the original, with mirrored legs."""
    (earn,) = run(engine, Earn("e1", "alice", 40, SOON))
    (rev,) = run(engine, Reverse("r1", "e1"))
    assert isinstance(earn, Applied) and isinstance(rev, Applied)
    assert balance(engine, "alice").available == 0
    assert hot(engine, AccountRef.issuance("bank")) == 0
    with engine.connect() as conn:
        entry = entry_by_key(conn, "r1")
    assert entry is not None and entry.reverses_entry_id == earn.entry_id
    (again,) = run(engine, Reverse("r2", "e1"))
    rejected(again, AlreadyReversed)


def test_reversing_a_spend_restores_the_lots_it_used(engine: Engine) -> None:
    """Undoing a spend gives the points back to the very lots it took them from."""
    run(engine, Earn("e1", "alice", 40, SOON), Spend("s1", "alice", 40))
    run(engine, Reverse("r1", "s1"))
    with engine.connect() as conn:
        (lot,) = customer_lots(conn, "alice")
    assert lot.remaining == 40
    assert balance(engine, "alice").available == 40


def test_reverse_refusals(engine: Engine) -> None:
    """Unknown keys, holds, and earnings already spent cannot be reversed."""
    run(engine, Earn("e1", "alice", 40, SOON), Spend("s1", "alice", 30),
        Hold("h1", "alice", 5, NOW + timedelta(hours=1)))
    unknown, hold, spent = run(engine, Reverse("r1", "nope"), Reverse("r2", "h1"),
                               Reverse("r3", "e1"))
    rejected(unknown, UnknownEntry)
    rejected(hold, NotReversible)
    rejected(spent, InsufficientPoints)


def test_an_earning_and_its_reversal_in_one_batch(engine: Engine) -> None:
    """A reversal may refer to an entry made earlier in the same batch."""
    results = run(engine, Earn("e1", "alice", 40, SOON), Reverse("r1", "e1"))
    assert all(isinstance(r, Applied) for r in results)
    assert balance(engine, "alice").available == 0


# --- clawback and receivable ------------------------------------------------------------


def test_clawback_takes_points_from_the_wallet(engine: Engine) -> None:
    """A partial clawback the wallet can cover simply debits it (its own lot first)."""
    run(engine, Earn("old", "alice", 50, SOON), Earn("e1", "alice", 100, LATER))
    (claw,) = run(engine, Clawback("c1", "e1", 30))
    assert isinstance(claw, Applied)
    assert balance(engine, "alice").available == 120
    with engine.connect() as conn:
        lots = [lot.remaining for lot in customer_lots(conn, "alice")]
    assert lots == [50, 70]


def test_what_the_wallet_cannot_cover_becomes_debt_paid_by_later_earnings(
    engine: Engine,
) -> None:
    """Clawback beyond the wallet creates receivable debt; the next earnings pay it first."""
    run(engine, Earn("e1", "alice", 100, SOON), Spend("s1", "alice", 70))
    run(engine, Clawback("c1", "e1"))  # all 100: 30 from the wallet, 70 as debt
    after = balance(engine, "alice")
    assert (after.available, after.debt) == (0, 70)
    run(engine, Earn("e2", "alice", 50, SOON))
    assert (balance(engine, "alice").available, balance(engine, "alice").debt) == (0, 20)
    run(engine, Earn("e3", "alice", 50, SOON))
    assert (balance(engine, "alice").available, balance(engine, "alice").debt) == (30, 0)
    with engine.connect() as conn:
        assert [lot.remaining for lot in customer_lots(conn, "alice")] == [30]


def test_clawback_cannot_exceed_the_earning(engine: Engine) -> None:
    """Clawbacks of one earning add up to at most its amount."""
    run(engine, Earn("e1", "alice", 100, SOON), Clawback("c1", "e1", 60))
    too_much, rest, none_left = run(engine, Clawback("c2", "e1", 41), Clawback("c3", "e1"),
                                    Clawback("c4", "e1"))
    rejected(too_much, ClawbackExceedsEarning)
    assert isinstance(rest, Applied)
    rejected(none_left, ClawbackExceedsEarning)
    assert balance(engine, "alice").available == 0


def test_an_earning_with_clawbacks_cannot_be_reversed(engine: Engine) -> None:
    """Once clawed back in part, an earning is finished with clawbacks, not a reversal."""
    run(engine, Earn("e1", "alice", 100, SOON), Clawback("c1", "e1", 10))
    (rev,) = run(engine, Reverse("r1", "e1"))
    rejected(rev, NotReversible)


# --- expiry and adjustments -------------------------------------------------------------


def test_expire_lots_posts_what_is_left_of_lots_past_their_date(engine: Engine) -> None:
    """Lots whose date has passed go to the expiry account; later lots stay."""
    run(engine, Earn("e1", "alice", 30, SOON), Earn("e2", "alice", 20, LATER),
        Earn("e3", "bob", 5, SOON), Spend("s1", "alice", 10))
    as_of = SOON + timedelta(days=1)
    (expiry,) = run(engine, ExpireLots("x1", as_of=as_of), now=as_of)
    assert isinstance(expiry, Applied)
    assert balance(engine, "alice").available == 20
    assert balance(engine, "bob").available == 0
    assert hot(engine, AccountRef.expiry("bank")) == 25
    (again,) = run(engine, ExpireLots("x2", as_of=as_of), now=as_of)
    assert isinstance(again, Applied)
    assert hot(engine, AccountRef.expiry("bank")) == 25


def test_operator_adjustments_need_a_reason_and_move_points_both_ways(engine: Engine) -> None:
    """A credit adjustment makes a lot; a debit uses lots; both name an operator."""
    credit, debit, anonymous = run(
        engine,
        Adjust("a1", "alice", 25, OPERATOR, expires_at=SOON),
        Adjust("a2", "alice", -5, OPERATOR),
        Adjust("a3", "alice", 5, Reason(note="no operator"), expires_at=SOON),
    )
    assert isinstance(credit, Applied) and isinstance(debit, Applied)
    rejected(anonymous, InvalidRequest)
    assert balance(engine, "alice").available == 20
    with engine.connect() as conn:
        entry = entry_by_key(conn, "a1")
    assert entry is not None and entry.reason.operator == "ops-ann"


def test_inbound_swap_credits_the_wallet_from_the_partner_clearing(engine: Engine) -> None:
    """Partner points coming in: the partner's clearing account funds the earning."""
    run(engine, Earn("in1", "alice", 70, SOON, kind="swap", from_partner="ride"))
    assert balance(engine, "alice").available == 70
    assert hot(engine, AccountRef.clearing("bank", "ride")) == -70


def test_statement_lists_each_entry_with_its_effect(engine: Engine) -> None:
    """The statement shows, newest first, what each entry did to wallet, held and debt."""
    run(engine, Earn("e1", "alice", 50, SOON), Hold("h1", "alice", 20, SOON),
        Spend("s1", "alice", 10))
    with engine.connect() as conn:
        lines = statement(conn, "alice")
    assert [(x.idempotency_key, x.wallet_delta, x.held_delta) for x in lines] == [
        ("s1", -10, 0), ("h1", -20, 20), ("e1", 50, 0)]


# --- the database's own enforcement -----------------------------------------------------


def test_the_database_refuses_a_leg_that_would_overdraw_a_wallet(engine: Engine) -> None:
    """Even bypassing Python, a leg debiting a wallet below zero fails its CHECK."""
    (earn,) = run(engine, Earn("e1", "alice", 10, SOON))
    assert isinstance(earn, Applied)
    with pytest.raises(DBAPIError), engine.begin() as conn:
        wallet, issuance = (conn.execute(text(
            "SELECT id FROM ledger_accounts WHERE kind = :k"), {"k": k}).scalar_one()
            for k in ("wallet", "issuance"))
        conn.execute(text(
            "INSERT INTO ledger_legs (entry_id, leg_no, debit_account_id, credit_account_id,"
            " amount) VALUES (:e, 1, :w, :i, 11)"), {"e": earn.entry_id, "w": wallet,
                                                     "i": issuance})
    assert_clean(engine)


@pytest.mark.parametrize("amount", [0, -1])
def test_the_database_refuses_non_positive_legs(engine: Engine, amount: int) -> None:
    """CHECK amount > 0 on every leg."""
    (earn,) = run(engine, Earn("e1", "alice", 10, SOON))
    assert isinstance(earn, Applied)
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO ledger_legs (entry_id, leg_no, debit_account_id, credit_account_id,"
            " amount) SELECT :e, 1, min(id), max(id), :a FROM ledger_accounts"),
            {"e": earn.entry_id, "a": amount})


@pytest.mark.parametrize("statement_sql", [
    "UPDATE ledger_entries SET amount = 1",
    "DELETE FROM ledger_legs",
    "UPDATE ledger_legs SET amount = amount + 1",
    "DELETE FROM ledger_entries",
])
def test_entries_and_legs_are_immutable(engine: Engine, statement_sql: str) -> None:
    """The database refuses to update or delete journal rows; fixes are new entries."""
    run(engine, Earn("e1", "alice", 10, SOON))
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text(statement_sql))
    assert balance(engine, "alice").available == 10


def test_verify_reports_a_tampered_lot(engine: Engine) -> None:
    """verify finds lots that no longer match their moves and their wallet."""
    run(engine, Earn("e1", "alice", 10, SOON))
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_lots SET remaining = remaining - 1"))
        report = verify(conn)
    assert {v.check for v in report.violations} == {"lots_match_moves", "lots_match_wallets"}
    assert report.entries == 1 and report.lots == 1


def test_expiring_two_holds_that_used_one_lot_returns_it_once(engine: Engine) -> None:
    """Two timed-out holds drawn from the same lot are voided by one entry; the lot gets
    both amounts back (one lot-move row per lot per entry)."""
    run(engine, Earn("e1", "alice", 100, SOON),
        Hold("h1", "alice", 30, NOW + timedelta(minutes=5)),
        Hold("h2", "alice", 20, NOW + timedelta(minutes=5)))
    later = NOW + timedelta(hours=1)
    (expiry,) = run(engine, ExpireHolds("x1", as_of=later), now=later)
    assert isinstance(expiry, Applied)
    with engine.connect() as conn:
        (lot,) = customer_lots(conn, "alice")
    assert lot.remaining == 100
    assert balance(engine, "alice").held == 0
