"""``GET /v1/me/refusals``: the signed-in customer's recorded refusals, newest first.

A refusal (points/refusals.py) is input the rules declined — a clawback the ledger could not
post, a referral a fraud guard stopped, a member link to someone else's membership — and the
customer it concerns sees it here with its reason. Only rows whose ``customer_id`` is the
token's ``sub`` are ever read; the cursor pages like ``/v1/me/activity``'s.
"""

# No ``from __future__ import annotations``: FastAPI must see the route's Annotated dependency
# (built from an argument of refusals_router) as an object, not a string to resolve later.

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select

from points.api.views import decode_cursor, encode_cursor
from points.refusals import refusals

__all__ = ["RefusalPage", "refusals_router"]


class RefusalItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    at: datetime
    subject: str = Field(description="What was refused: clawback, referral, member_link, ...")
    subject_id: str | None = Field(description="The refused thing's id (refund event id, ...).")
    event_id: str | None = Field(description="The message that caused it, if one did.")
    reason_code: str
    reason: str


class RefusalPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[RefusalItem]
    next_cursor: str | None = Field(description="Pass as ?cursor= for older refusals; null at "
                                                "the end.")


def refusal_page(conn: Connection, customer_id: str, before: int | None, limit: int) -> RefusalPage:
    t = refusals
    query = (
        select(t.c.id, t.c.at, t.c.subject, t.c.subject_id, t.c.event_id, t.c.reason_code,
               t.c.reason)
        .where(t.c.customer_id == customer_id)
        .order_by(t.c.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(t.c.id < before)
    rows = [RefusalItem(**dict(r)) for r in conn.execute(query).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    return RefusalPage(items=rows, next_cursor=encode_cursor(rows[-1].id) if more else None)


def refusals_router(
    customer: Callable[..., Any], page_max: int, problems: dict[int | str, dict[str, Any]]
) -> APIRouter:
    """The route, given the API's customer dependency (the token's ``sub``, rate-limited)."""
    router = APIRouter()

    @router.get("/v1/me/refusals", tags=["points"], response_model=RefusalPage,
                responses=problems, summary="Your refusals, newest first, with their reasons")
    async def get_refusals(
        request: Request,
        customer_id: Annotated[str, Depends(customer)],
        limit: Annotated[int, Query(ge=1, le=page_max)] = 20,
        cursor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    ) -> RefusalPage:
        before = decode_cursor(cursor)  # refuse a bad cursor before touching the database
        ctx = request.app.state.ctx
        page: RefusalPage = await ctx.read(
            lambda c: refusal_page(c, customer_id, before, limit))
        return page

    return router
