"""Who may see what in the SkyPortal stand-in: the visibility rules the handlers share, as functions of the
request (`Ctx`: its store, user and accessible groups)."""

from __future__ import annotations

from bot.sim.skyportal.context import Ctx
from bot.sim.skyportal.schema import loads


def readable_allocation(ctx: Ctx, allocation_id: int):
    """The allocation row if the user is an admin or in its group, else None."""
    a = ctx.store.allocation(allocation_id)
    if a is None or (not ctx.admin and a["group_id"] not in ctx.accessible()):
        return None
    return a


def visible_request(ctx: Ctx, r) -> bool:
    """A follow-up request is visible with its allocation (SP models/followup_request.py:209)."""
    a = ctx.store.allocation(r["allocation_id"])
    return ctx.admin or (a is not None and a["group_id"] in ctx.accessible())


def visible_source_rows(ctx: Ctx, obj_id: str) -> list:
    rows = ctx.store.q("SELECT * FROM sources WHERE obj_id = ? ORDER BY group_id", (obj_id,))
    acc = ctx.accessible()
    return [s for s in rows if ctx.admin or s["group_id"] in acc]


def visible_comments(ctx: Ctx, obj_id: str, channel: str | None, any_channel: bool = False) -> list:
    rows = ctx.store.q("SELECT * FROM comments WHERE obj_id = ? ORDER BY created_at, id", (obj_id,))
    acc = set(ctx.accessible())
    out = []
    for c in rows:
        if not any_channel and c["channel"] != channel:
            continue
        if ctx.admin or c["author_id"] == ctx.user["id"] or acc & set(loads(c["group_ids"])):
            out.append(c)
    return out


def visible_annotations(ctx: Ctx, obj_id: str) -> list:
    acc = set(ctx.accessible())
    return [a for a in ctx.store.q("SELECT * FROM annotations WHERE obj_id = ? ORDER BY id", (obj_id,))
            if ctx.admin or a["author_id"] == ctx.user["id"] or acc & set(loads(a["group_ids"]))]


def classification_reader(ctx: Ctx):
    """`readable(group_ids)` for `Store.classifications`: a Classification is read by the members of one of its
    groups (SP models/classification.py:21, accessible_by_groups_members), by every group for an admin."""
    acc = set(ctx.accessible())
    return lambda group_ids: ctx.admin or bool(acc & set(group_ids))
