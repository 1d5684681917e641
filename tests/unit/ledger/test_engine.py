"""The batch engine decides operations in order against in-memory state (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from points.errors import (
    HoldAlreadyResolved,
    InsufficientPoints,
    LedgerInvariantViolated,
    NotReversible,
)
from points.ledger.batch_state import BatchState, EntryDraft, EntryInfo, LotState
from points.ledger.engine import decide
from points.ledger.model import (
    AccountRef,
    Clawback,
    Earn,
    Hold,
    Operation,
    PostHold,
    Reverse,
    Spend,
    VoidHold,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
WALLET = AccountRef.wallet("bank", "alice")


def run(state: BatchState, *ops: Operation) -> list[EntryDraft]:
    return decide([(op, 100 + i, 0) for i, op in enumerate(ops)], state, now=NOW)


def loaded_state() -> BatchState:
    """Alice with lots already loaded (the store loads them for any wallet it may debit)."""
    return BatchState(lots={WALLET: []})


def test_operations_in_one_batch_see_each_others_effects() -> None:
    """An earn then a spend of the same points in one batch: both commit."""
    state = loaded_state()
    earn, spend = run(state, Earn("e", "alice", 10, NOW + timedelta(days=1)),
                      Spend("s", "alice", 10))
    assert earn.committed and spend.committed
    assert spend.lot_moves == [(100, -10)]
    assert state.balance(WALLET) == 0


def test_a_refused_operation_leaves_the_state_for_the_next_one() -> None:
    """A refused spend changes nothing: the spend after it sees the original balance."""
    state = loaded_state()
    drafts = run(state, Earn("e", "alice", 10, NOW + timedelta(days=1)),
                 Spend("too-much", "alice", 11), Spend("ok", "alice", 10))
    assert [d.committed for d in drafts] == [True, False, True]
    assert isinstance(drafts[1].error, InsufficientPoints)
    assert drafts[1].legs == [] and drafts[1].lot_moves == []


def test_every_committed_leg_moves_a_positive_amount_between_two_accounts() -> None:
    """Legs balance by construction: one debit, one credit, same amount, different accounts."""
    state = loaded_state()
    drafts = run(state, Earn("e", "alice", 50, NOW + timedelta(days=1)),
                 Hold("h", "alice", 20, NOW + timedelta(hours=1), to_partner="ride"),
                 PostHold("p", "h", 5), Clawback("c", "e", 40))
    for draft in drafts:
        assert draft.committed, draft.error
        for debit, credit, amount in draft.legs:
            assert amount > 0 and debit != credit and debit.program == credit.program


def test_a_hold_resolves_once_within_a_batch() -> None:
    """Post then void of the same hold: the void is HoldAlreadyResolved."""
    state = loaded_state()
    drafts = run(state, Earn("e", "alice", 50, NOW + timedelta(days=1)),
                 Hold("h", "alice", 20, NOW + timedelta(hours=1)),
                 PostHold("p", "h"), VoidHold("v", "h"))
    assert isinstance(drafts[3].error, HoldAlreadyResolved)


def test_reversing_a_hold_is_refused() -> None:
    """Holds are undone by voiding them, not by reversal."""
    state = loaded_state()
    state.entries["h"] = EntryInfo(1, "h", "hold", "bank", "alice", 5, [], [], None)
    (draft,) = run(state, Reverse("r", "h"))
    assert isinstance(draft.error, NotReversible)


def test_debiting_a_wallet_whose_lots_were_not_loaded_is_a_bug_not_a_refusal() -> None:
    """The engine never guesses lots: a missing load is LedgerInvariantViolated."""
    state = BatchState(balances={WALLET: 10})
    with pytest.raises(LedgerInvariantViolated):
        run(state, Spend("s", "alice", 5))


def test_lots_that_do_not_add_up_to_the_balance_stop_the_batch() -> None:
    """Python checks "lots == wallet balance" before consuming, as the database does later."""
    state = BatchState(balances={WALLET: 10},
                       lots={WALLET: [LotState(1, WALLET, NOW, 5, 5)]})
    with pytest.raises(LedgerInvariantViolated):
        run(state, Spend("s", "alice", 5))
