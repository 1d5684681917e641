"""What the demo day produced, read back from the ledger database (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, select

from demo.campaigns import CampaignCheck
from points.dead_letters import dead_letters
from points.earning.tables import customer_rule_state, earning_records
from points.inbox import inbound_events
from points.ledger import verify
from points.ledger.tables import entries
from points.nudges.tables import nudges

__all__ = ["DaySummary", "collect", "render", "render_campaigns", "render_nudges"]


@dataclass
class DaySummary:
    events: int = 0
    entries_by_kind: Counter[str] = field(default_factory=Counter)
    points_by_kind: Counter[str] = field(default_factory=Counter)
    points_by_rule: Counter[str] = field(default_factory=Counter)
    points_by_campaign: Counter[str] = field(default_factory=Counter)
    reactivated: int = 0
    badges: Counter[str] = field(default_factory=Counter)
    streaks_running: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    #: (nudge id, outcome) -> nudges decided; reason code -> nudges suppressed
    nudges: Counter[tuple[str, str]] = field(default_factory=Counter)
    nudges_suppressed: Counter[str] = field(default_factory=Counter)
    verify_ok: bool = False
    verify_entries: int = 0
    violations: list[str] = field(default_factory=list)


def collect(engine: Engine, prefix: str, since: datetime) -> DaySummary:
    """Aggregate this run's customers (ids start with ``prefix``) and the whole ledger's health."""
    summary = DaySummary()
    like = f"{prefix}%"
    with engine.connect() as conn:
        summary.events = int(
            conn.execute(
                select(func.count())
                .select_from(inbound_events)
                .where(inbound_events.c.customer_id.like(like))
            ).scalar_one()
        )
        for kind, count, points in conn.execute(
            select(entries.c.kind, func.count(), func.coalesce(func.sum(entries.c.amount), 0))
            .where(entries.c.customer_id.like(like), entries.c.status == "committed")
            .group_by(entries.c.kind)
        ):
            summary.entries_by_kind[kind] = int(count)
            summary.points_by_kind[kind] = int(points)
        for (record,) in conn.execute(
            select(earning_records.c.record).where(earning_records.c.customer_id.like(like))
        ):
            for line in record["lines"]:
                summary.points_by_rule[line["rule_id"]] += line["points"]
                if line["kind"] == "campaign":
                    summary.points_by_campaign[line["rule_id"]] += line["points"]
                if line["kind"] == "reactivation" and line["points"] > 0:
                    summary.reactivated += 1
        for (state,) in conn.execute(
            select(customer_rule_state.c.state).where(customer_rule_state.c.customer_id.like(like))
        ):
            summary.badges.update(state.get("badges") or [])
            summary.streaks_running += sum(
                1 for s in (state.get("streaks") or {}).values() if int(s.get("length", 0)) >= 2
            )
        for code, count in conn.execute(
            select(dead_letters.c.reason_code, func.count())
            .where(dead_letters.c.created_at >= since)
            .group_by(dead_letters.c.reason_code)
        ):
            summary.dead_letters[code] = int(count)
        for nudge, outcome, code, count in conn.execute(
            select(nudges.c.nudge, nudges.c.outcome, nudges.c.reason_code, func.count())
            .where(nudges.c.customer_id.like(like))
            .group_by(nudges.c.nudge, nudges.c.outcome, nudges.c.reason_code)
        ):
            summary.nudges[(nudge, outcome)] += int(count)
            if outcome == "suppressed":
                summary.nudges_suppressed[code] += int(count)
        report = verify(conn)
    summary.verify_ok = report.ok
    summary.verify_entries = report.entries
    summary.violations = [f"{v.check}: {v.subject}: {v.detail}" for v in report.violations[:10]]
    return summary


def _table(title: str, columns: tuple[str, ...], rows: Sequence[tuple[object, ...]]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="right" if i else "left")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
    return table


def render(console: Console, summary: DaySummary) -> None:
    console.print(
        _table(
            "Ledger entries for this day",
            ("kind", "entries", "points"),
            [
                (k, summary.entries_by_kind[k], summary.points_by_kind[k])
                for k in sorted(summary.entries_by_kind)
            ],
        )
    )
    console.print(
        _table("Points issued by rule", ("rule", "points"), summary.points_by_rule.most_common(15))
    )
    if summary.points_by_campaign:
        console.print(
            _table(
                "Points issued by campaign",
                ("campaign", "points"),
                summary.points_by_campaign.most_common(),
            )
        )
    console.print(
        _table(
            "Engagement",
            ("measure", "customers"),
            [
                ("dormant customers reactivated", summary.reactivated),
                ("streaks running (2+)", summary.streaks_running),
            ]
            + [(f"badge: {b}", n) for b, n in summary.badges.most_common(8)],
        )
    )
    render_nudges(console, summary)
    console.print(
        _table(
            "Dead letters (this run), by reason",
            ("reason", "messages"),
            sorted(summary.dead_letters.items()),
        )
    )
    verdict = "[green]clean" if summary.verify_ok else "[red]VIOLATIONS"
    console.print(f"verify: {verdict}[/] over {summary.verify_entries:,} ledger entries")
    for violation in summary.violations:
        console.print(f"  [red]{violation}")


def render_nudges(console: Console, summary: DaySummary) -> None:
    """Nudges the day's purchases triggered (rules/default.yaml ``nudges:``): sent on
    customer.nudges, or suppressed with the reason operations see in ``nudges list``."""
    names = sorted({nudge for nudge, _ in summary.nudges})
    console.print(
        _table(
            "Nudges (customer.nudges)",
            ("nudge", "sent", "suppressed"),
            [(n, summary.nudges[(n, "sent")], summary.nudges[(n, "suppressed")]) for n in names]
            or [("none triggered", 0, 0)],
        )
    )
    if summary.nudges_suppressed:
        console.print(
            _table(
                "Nudges suppressed, by reason",
                ("reason", "nudges"),
                summary.nudges_suppressed.most_common(),
            )
        )


def render_campaigns(console: Console, checks: Sequence[CampaignCheck]) -> None:
    """Each demo campaign's uplift report against the simulated truth (demo/campaigns.py):
    two lines a campaign, so a narrow terminal wraps instead of cutting the numbers."""
    if not checks:
        return
    console.print(
        "[bold]Campaign uplift against the simulated truth[/] (this run's customers; "
        "`points-ledger campaigns report ID` for the whole ledger)"
    )
    for check in checks:
        report = check.report
        spend = report.incremental_spend
        found = (
            "no interval"
            if spend is None
            else f"estimate {spend.estimate / 100:,.2f}, 95% interval "
            f"[{spend.low / 100:,.2f}, {spend.high / 100:,.2f}]"
        )
        mark = "[green]contains the truth[/]" if check.recovered else "[red]MISSES the truth[/]"
        console.print(
            f"  {check.campaign_id}: treated {report.treated.customers:,}, holdout "
            f"{report.holdout.customers:,}; true uplift {check.true_uplift_percent}% = "
            f"{check.true_incremental_minor / 100:,.2f} yuan of spend"
        )
        console.print(f"    report: {found}: {mark}; {report.verdict}")


def render_exchange(console: Console, day: object) -> None:
    """Links, swaps by partner and state, referral funnel, settlement per partner."""
    from demo.exchange_day import ExchangeDay

    assert isinstance(day, ExchangeDay)
    console.print(_table("Member links", ("status", "links"), sorted(day.links.items())))
    states = sorted({s for counts in day.swaps.values() for s in counts})
    swaps = Table(title="Swaps by partner and state", title_justify="left")
    swaps.add_column("partner")
    for state in states:
        swaps.add_column(state, justify="right")
    for partner, counts in sorted(day.swaps.items()):
        swaps.add_row(partner, *(f"{counts.get(s, 0):,}" for s in states))
    console.print(swaps)
    if day.refused:
        console.print(
            _table(
                "Swaps refused before anything moved",
                ("reason", "orders"),
                sorted(day.refused.items()),
            )
        )
    console.print(
        _table("Referral funnel (all time)", ("status", "referrals"), sorted(day.referrals.items()))
    )
    settle = Table(title="Settlement per partner (this run)", title_justify="left")
    for column in (
        "partner",
        "points out",
        "points in",
        "fees",
        "net points",
        "owed (minor)",
        "reconciled",
    ):
        settle.add_column(column, justify="left" if column == "partner" else "right")
    for st in day.statements:
        settle.add_row(
            st.partner_id,
            f"{st.points_out:,}",
            f"{st.points_in:,}",
            f"{st.fee_points:,}",
            f"{st.net_points:,}",
            f"{st.net_amount_minor:,} {st.currency}",
            "yes" if st.reconciled else "NO",
        )
    console.print(settle)


def render_packets(console: Console, day: object) -> None:
    """The fission funnel of this run's red packets, by generation (docs/gifts.md)."""
    from demo.packets_day import PacketsDay

    assert isinstance(day, PacketsDay)
    funnel = Table(title="Red packets: the fission funnel, by generation (this run)",
                   title_justify="left")
    for column in ("senders", "sent", "points", "opened", "claimed", "points claimed",
                   "new customers"):
        funnel.add_column(column, justify="left" if column == "senders" else "right")
    for g in [*day.funnel["generations"], {"generation": None, **day.funnel["total"]}]:
        who = "all" if g["generation"] is None else f"generation {g['generation']}"
        funnel.add_row(who, *(f"{int(g[k]):,}" for k in (
            "sent", "points_sent", "opened", "claimed", "points_claimed", "new_customers")))
    console.print(funnel)
    console.print(f"  sent → opened → claimed → new customers, through the API and "
                  f"bank.customers: {day.requests:,} API requests in {day.took_s:.1f} s; "
                  "new customers of generation g's packets are generation g + 1")
    if day.refused:
        console.print(_table("Packet requests refused (as the customer saw them)",
                             ("reason", "requests"), sorted(day.refused.items())))
