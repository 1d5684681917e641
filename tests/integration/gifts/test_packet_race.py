"""1,000 concurrent claimants on a 10-share packet, on PostgreSQL: exactly 10 claims."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from points.db import make_engine
from points.gifts import desk
from points.gifts.desk import GiftRefused
from points.gifts.tables import packet_claims
from points.migrate import upgrade
from tests.integration.gifts.support import NOW, POLICY, assert_clean, customer, held, wallet

CLAIMANTS = 1000
SHARES = 10


def test_a_thousand_claimants_race_for_ten_shares(fresh_pg_url: str) -> None:
    """1,000 customers (each a distinct identity) claim one random 10-share packet of 1,000
    points from 32 threads at once: exactly 10 claims succeed, every other one is refused
    'packet_empty', no customer holds two shares, the shares sum to the total, the sender's
    hold is empty and verify is clean."""
    upgrade(fresh_pg_url)
    engine: Engine = make_engine(fresh_pg_url, pool_size=32)
    customer(engine, "sender", points=5000)
    for n in range(CLAIMANTS):
        customer(engine, f"c{n}")
    with engine.begin() as conn:
        code = desk.create_packet(conn, sender_id="sender", packet_id="race", total=1000,
                                  shares=SHARES, split_mode="random", message="", now=NOW,
                                  policy=POLICY)["code"]

    def claim(n: int) -> str:
        for _ in range(5):
            try:
                with engine.begin() as conn:
                    desk.claim_packet(conn, claimant_id=f"c{n}", code=code, now=NOW)
                return "claimed"
            except GiftRefused as error:
                return error.reason_code
            except OperationalError:  # a deadlock victim retries, as the API's caller would
                continue
        return "gave_up"

    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(claim, range(CLAIMANTS)))
    assert outcomes.count("claimed") == SHARES
    assert outcomes.count("packet_empty") == CLAIMANTS - SHARES
    with engine.connect() as conn:
        n, points, people = conn.execute(select(
            func.count(), func.sum(packet_claims.c.points),
            func.count(packet_claims.c.claimant_id.distinct()))).one()
    assert (n, points, people) == (SHARES, 1000, SHARES)
    winners = [f"c{i}" for i, o in enumerate(outcomes) if o == "claimed"]
    assert sum(wallet(engine, w) for w in winners) == 1000
    assert (wallet(engine, "sender"), held(engine, "sender")) == (4000, 0)
    assert_clean(engine)
    engine.dispose()
