"""Red packet shares: every share at least one point, the shares sum exactly to the total,
the random draw stays within the double-average bound and replays identically from its seed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from points.gifts import split


def cut(mode: split.SplitMode, total: int, shares: int, seed: str) -> list[int]:
    out: list[int] = []
    remaining = total
    for n in range(1, shares + 1):
        share = split.draw_share(mode, total=total, shares=shares, share_no=n,
                                 remaining=remaining, seed=seed)
        out.append(share)
        remaining -= share
    return out


@given(total=st.integers(1, 10**9), shares=st.integers(1, 300), seed=st.text(max_size=20),
       mode=st.sampled_from(["equal", "random"]))
def test_shares_are_positive_and_sum_to_the_total(total: int, shares: int, seed: str,
                                                  mode: split.SplitMode) -> None:
    """Whatever the total, share count, seed and mode: each share >= 1, sum == total."""
    if total < shares:
        total = shares
    got = cut(mode, total, shares, seed)
    assert len(got) == shares
    assert sum(got) == total
    assert min(got) >= 1


@given(total=st.integers(10, 10**6), shares=st.integers(2, 50), seed=st.text(max_size=8))
def test_random_share_is_within_twice_the_average_left(total: int, shares: int,
                                                       seed: str) -> None:
    """Each random share except the last is at most 2 x remaining / shares left."""
    if total < shares:
        total = shares
    remaining = total
    for n in range(1, shares):
        share = split.draw_share("random", total=total, shares=shares, share_no=n,
                                 remaining=remaining, seed=seed)
        assert 1 <= share <= max(2 * remaining // (shares - n + 1), 1)
        remaining -= share


def test_the_same_seed_replays_the_same_shares_and_another_seed_differs() -> None:
    """The draw is a function of the recorded seed: a replay gives the same shares."""
    first = cut("random", 10_000, 10, "seed-a")
    assert cut("random", 10_000, 10, "seed-a") == first
    assert cut("random", 10_000, 10, "seed-b") != first


def test_equal_split_gives_the_remainder_to_the_first_shares() -> None:
    """100 points in 3 equal shares: 34, 33, 33."""
    assert cut("equal", 100, 3, "x") == [34, 33, 33]


def test_a_draw_with_fewer_points_than_shares_left_is_refused() -> None:
    """A share cannot be drawn when fewer points remain than shares."""
    with pytest.raises(ValueError):
        split.draw_share("random", total=10, shares=5, share_no=2, remaining=3, seed="s")


def test_claim_codes_are_short_unguessable_and_normalised() -> None:
    """Ten symbols of the 30-letter alphabet; lower case and dashes are read back."""
    code = split.new_claim_code()
    assert len(code) == split.CODE_LENGTH and set(code) <= set(split.CODE_ALPHABET)
    assert split.normalise_claim_code(f" {code[:5].lower()}-{code[5:]} ") == code
    assert len({split.new_claim_code() for _ in range(1000)}) == 1000
