"""``points-ledger``: the operations CLI. The one application object, and the one place where
errors leave: :class:`OpsGroup` turns any error into one line on stderr and its exit code
(see :mod:`points.cli.errors`).

Each command lives in its own module under :mod:`points.cli.commands`; this module only
assembles them.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from points.cli.commands import (
    adjust_approve,
    adjust_list,
    adjust_new,
    adjust_reject,
    api_purge_keys,
    audit,
    balance,
    campaigns_report,
    customer_export,
    customer_show,
    dlq_list,
    dlq_replay,
    entry_show,
    expire,
    explain,
    holds_expire,
    holds_list,
    holds_void,
    links_list,
    links_show,
    migrate,
    nudges_list,
    packets_approve_void,
    packets_list,
    packets_show,
    packets_sweep,
    packets_void,
    referrals_list,
    referrals_show,
    refusals_list,
    reverse,
    rules_backtest,
    rules_validate,
    settlement_export,
    statement,
    swaps_list,
    swaps_show,
    verify,
)
from points.cli.context import Ops
from points.cli.errors import describe, exit_code_for
from points.cli.output import Output
from points.settings import load_settings

__all__ = ["app", "main"]


# The click context typer hands a group: since typer 0.26 a class of typer's private, vendored
# copy of click (``typer._click``), not click's. ``typer.Context`` is only a subclass of it for
# annotating command parameters, so the overrides below take ``Any`` and use only the
# context's documented click methods. Floor in pyproject.toml: typer 0.29 (0.28 is the first
# whose usage errors derive from the public ``typer.TyperException``, but words range errors
# differently from what tests/integration/cli pins; 0.29.0 passes them).
ClickContext = Any


class OpsGroup(TyperGroup):
    """The root group: every command runs inside its ``invoke``, so errors are mapped here."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # usage errors (exit 2) and deliberate exits keep click's handling
        except Exception as error:
            ops = ctx.find_object(Ops)
            if ops is not None and ops.debug:
                traceback.print_exc(file=sys.stderr)
            code = exit_code_for(error)
            output = ops.output if ops is not None else Output(json_mode=False)
            output.error(describe(error))
            raise typer.Exit(int(code)) from error


class DefaultCommandGroup(TyperGroup):
    """A group whose first argument, when it names no subcommand, goes to ``new``.

    ``adjust CUSTOMER DELTA`` means ``adjust new CUSTOMER DELTA`` while ``adjust approve ID``
    still reaches ``approve`` (a customer whose id is a subcommand's name needs ``new``).
    """

    default_command = "new"

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=OpsGroup,
    name="points-ledger",
    help="Operate the points ledger: balances, corrections, holds, expiry, DLQ, rules, "
    "API housekeeping.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    ctx: typer.Context,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="Ledger database (default: POINTS_DATABASE__URL, or the "
        "embedded SQLite file under POINTS_DATA_DIR).", show_default=False)] = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Machine-readable JSON on stdout instead of tables.")] = False,
    program: Annotated[str, typer.Option(
        "--program", help="Points program: 'bank' or a partner id.")] = "bank",
    debug: Annotated[bool, typer.Option(
        "--debug", help="Print the traceback of an unexpected error.")] = False,
) -> None:
    output = Output(json_mode=json_output)
    try:
        settings = load_settings()
    except Exception as error:  # settings come from the environment: report it in one line
        output.error(describe(error))
        raise typer.Exit(int(exit_code_for(error))) from error
    ops = Ops(
        database_url=database_url or settings.database_url,
        program=program,
        output=output,
        settings=settings,
        debug=debug,
    )
    ctx.obj = ops
    ctx.call_on_close(ops.close)


app.command("balance")(balance.command)
app.command("statement")(statement.command)
app.command("explain")(explain.command)
app.command("reverse")(reverse.command)
app.command("expire")(expire.command)
app.command("verify")(verify.command)
app.command("audit")(audit.command)
app.command("migrate")(migrate.command)

entry_app = typer.Typer(help="Look at one ledger entry.", no_args_is_help=True)
entry_app.command("show")(entry_show.command)
app.add_typer(entry_app, name="entry")

adjust_app = typer.Typer(
    cls=DefaultCommandGroup,
    help="Operator corrections, with maker-checker above the approval threshold. "
    "`adjust CUSTOMER DELTA ...` is short for `adjust new CUSTOMER DELTA ...`.",
    no_args_is_help=True,
)
adjust_app.command("new", context_settings={"ignore_unknown_options": True})(
    adjust_new.command
)
adjust_app.command("approve")(adjust_approve.command)
adjust_app.command("reject")(adjust_reject.command)
adjust_app.command("list")(adjust_list.command)
app.add_typer(adjust_app, name="adjust")

holds_app = typer.Typer(help="Pending holds: list, void, expire.", no_args_is_help=True)
holds_app.command("list")(holds_list.command)
holds_app.command("void")(holds_void.command)
holds_app.command("expire")(holds_expire.command)
app.add_typer(holds_app, name="holds")

dlq_app = typer.Typer(help="Dead letters: list and replay.", no_args_is_help=True)
dlq_app.command("list")(dlq_list.command)
dlq_app.command("replay")(dlq_replay.command)
app.add_typer(dlq_app, name="dlq")

nudges_app = typer.Typer(help="Nudges decided (sent or suppressed): list.",
                         no_args_is_help=True)
nudges_app.command("list")(nudges_list.command)
app.add_typer(nudges_app, name="nudges")

refusals_app = typer.Typer(help="Recorded refusals: list.", no_args_is_help=True)
refusals_app.command("list")(refusals_list.command)
app.add_typer(refusals_app, name="refusals")

rules_app = typer.Typer(help="Earning rule files: validate, backtest.", no_args_is_help=True)
rules_app.command("validate")(rules_validate.command)
rules_app.command("backtest")(rules_backtest.command)
app.add_typer(rules_app, name="rules")

settlement_app = typer.Typer(help="Partner settlement statements.", no_args_is_help=True)
settlement_app.command("export")(settlement_export.command)
app.add_typer(settlement_app, name="settlement")

swaps_app = typer.Typer(help="Outbound swaps: list, show with replies and ledger legs.",
                        no_args_is_help=True)
swaps_app.command("list")(swaps_list.command)
swaps_app.command("show")(swaps_show.command)
app.add_typer(swaps_app, name="swaps")

links_app = typer.Typer(help="Member links at partners: list, show with refusals.",
                        no_args_is_help=True)
links_app.command("list")(links_list.command)
links_app.command("show")(links_show.command)
app.add_typer(links_app, name="links")
referrals_app = typer.Typer(
    help="Referrals: list and show, with the reason of every refusal.", no_args_is_help=True
)
referrals_app.command("list")(referrals_list.command)
referrals_app.command("show")(referrals_show.command)
app.add_typer(referrals_app, name="referrals")

customer_app = typer.Typer(help="Customers' behaviour profiles: show one, export all.",
                           no_args_is_help=True)
customer_app.command("show")(customer_show.command)
customer_app.command("export")(customer_export.command)
app.add_typer(customer_app, name="customer")

campaigns_app = typer.Typer(help="Campaigns: uplift against their holdout.",
                            no_args_is_help=True)
campaigns_app.command("report")(campaigns_report.command)
app.add_typer(campaigns_app, name="campaigns")
packets_app = typer.Typer(
    help="Red packets: list, show, void (maker-checker), sweep expired packets and gifts.",
    no_args_is_help=True)
packets_app.command("list")(packets_list.command)
packets_app.command("show")(packets_show.command)
packets_app.command("void")(packets_void.command)
packets_app.command("approve-void")(packets_approve_void.command)
packets_app.command("sweep")(packets_sweep.command)
app.add_typer(packets_app, name="packets")

api_app = typer.Typer(
    help="The customer API's own tables: stored Idempotency-Key responses.", no_args_is_help=True
)
api_app.command("purge-idempotency-keys")(api_purge_keys.command)
app.add_typer(api_app, name="api")


def main() -> None:
    """Console script entry point (``points-ledger = "points.cli.app:main"``)."""
    app(prog_name="points-ledger")

