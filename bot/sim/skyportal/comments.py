"""Handlers of the SkyPortal stand-in for comments (with bot de-duplication) and annotations (unique per
(obj, origin)) on a source.
"""

from __future__ import annotations

from typing import Any, Callable

from bot.sim.skyportal.context import Ctx, int_arg
from bot.sim.skyportal.envelope import Handlers
from bot.sim.skyportal.errors import ApiError
from bot.sim.skyportal.schema import dumps, loads, utcnow
from bot.sim.skyportal.validation import AnnotationPost, AnnotationPut, pydantic_load
from bot.sim.skyportal.visibility import visible_annotations, visible_comments


class CommentsHandlers(Handlers):
    """/api/sources/<obj_id>/comments[/id] and /api/sources/<obj_id>/annotations[/id]."""

    # ---- shared by comments and annotations -------------------------------------------------------
    def _check_groups(self, group_ids: list[int]) -> None:
        if set(self.store.existing_group_ids(group_ids)) != set(group_ids):
            raise ApiError(400, f"Cannot find one or more groups with IDs: {group_ids}")

    def _row_on_obj(self, kind: str, obj_id: str, row_id: str, allowed: Callable[[Any], bool]):
        """The comment/annotation `row_id` of /api/sources/<obj_id>/<kind>s/<row_id>: 403 when it is missing or
        not `allowed`, 400 when it belongs to another obj."""
        rid = int_arg(f"{kind}_id", row_id)
        row = self.store.q1(f"SELECT * FROM {kind}s WHERE id = ?", (rid,))
        if row is None or not allowed(row):
            raise ApiError(403, f"Could not find any accessible {kind}s.")
        if row["obj_id"] != obj_id:
            raise ApiError(400, f"{kind.capitalize()} resource ID does not match resource ID given in path ({obj_id})")
        return row

    # ---- comments ---------------------------------------------------------------------------------
    def comments_post(self, ctx: Ctx, obj_id: str):
        st = self.store
        data = ctx.json()
        group_ids = data.get("group_ids")
        if not group_ids or not isinstance(group_ids, list):
            group_ids = [st.public_group_id()]
        else:
            try:
                group_ids = [int(g) for g in group_ids]
            except (TypeError, ValueError):
                raise ApiError(400, f"Cannot find one or more groups with IDs: {group_ids}") from None
            self._check_groups(group_ids)
        group_ids = sorted(set(group_ids))
        text, channel = data.get("text"), data.get("channel")
        att_name = att_body = None
        att = data.get("attachment")
        if isinstance(att, dict):
            att_name, att_body = att.get("name"), att.get("body")
            if isinstance(att_body, str) and att_body.startswith("data:") and "," in att_body:
                att_body = att_body.split(",", 1)[1]
        text_s = None if text is None else str(text)
        for c in st.q("SELECT * FROM comments WHERE obj_id = ? AND author_id = ? AND bot = 1", (obj_id, ctx.user["id"])):
            if (c["text"] == text_s and c["channel"] == channel and c["attachment_name"] == att_name
                    and c["attachment_bytes"] == att_body and loads(c["group_ids"]) == group_ids):
                return self.ok({"comment_id": c["id"], "message": "Same comment already exists."})
        if st.obj(obj_id) is None:
            raise ApiError(400, f"Error posting comment for sources {obj_id}: (psycopg2.errors.ForeignKeyViolation)"
                                ' insert or update on table "comments" violates foreign key constraint'
                                ' "comments_obj_id_fkey"')
        if text_s is None:
            raise ApiError(400, f"Error posting comment for sources {obj_id}: (psycopg2.errors.NotNullViolation)"
                                ' null value in column "text" of relation "comments" violates not-null constraint')
        comment_id = st.insert_comment(obj_id, text_s, ctx.user["id"], group_ids, data.get("origin"), channel,
                                       att_name, att_body)
        return self.ok({"comment_id": comment_id})

    def _comment_out(self, c) -> dict:
        return {**self.store.comment_dict(c), "resourceType": "sources",
                "author": self.store.user_dict(self.store.user(c["author_id"]))}

    def comments_get(self, ctx: Ctx, obj_id: str):
        rows = visible_comments(ctx, obj_id, ctx.arg("channel"))
        text = ctx.arg("text")
        if text:
            rows = [c for c in rows if text.lower() in c["text"].lower()]
        return self.ok([self._comment_out(c) for c in rows])

    def comment_one(self, ctx: Ctx, obj_id: str, comment_id: str):
        c = self._row_on_obj("comment", obj_id, comment_id, lambda c: c["id"] in [
            r["id"] for r in visible_comments(ctx, c["obj_id"], None, True)])
        return self.ok(self._comment_out(c))

    # ---- annotations ------------------------------------------------------------------------------
    @staticmethod
    def _duplicate_annotation(obj_id: str, origin: str) -> ApiError:
        return ApiError(400, "Annotation already exists: (psycopg2.errors.UniqueViolation) duplicate key value "
                             'violates unique constraint "annotations_obj_id_origin_key"\n'
                             f"DETAIL:  Key (obj_id, origin)=({obj_id}, {origin}) already exists.")

    def annotations_post(self, ctx: Ctx, obj_id: str):
        st = self.store
        body = pydantic_load(AnnotationPost, ctx.json())
        group_ids = ctx.accessible() if body.group_ids is None else list(dict.fromkeys(body.group_ids))
        self._check_groups(group_ids)
        if st.obj(obj_id) is None:
            raise ApiError(404, f"Obj {obj_id} not found")
        if st.q1("SELECT 1 FROM annotations WHERE obj_id = ? AND origin = ?", (obj_id, body.origin)):
            raise self._duplicate_annotation(obj_id, body.origin)
        now = utcnow()
        cur = st.x("INSERT INTO annotations (obj_id, origin, data, author_id, group_ids, created_at, modified)"
                   " VALUES (?,?,?,?,?,?,?)",
                   (obj_id, body.origin, dumps(body.data), ctx.user["id"], dumps(sorted(group_ids)), now, now))
        return self.ok({"annotation_id": cur.lastrowid})

    def annotations_get(self, ctx: Ctx, obj_id: str):
        return self.ok([self.store.annotation_dict(a) for a in visible_annotations(ctx, obj_id)])

    def _annotation_for_update(self, ctx: Ctx, obj_id: str, annotation_id: str):
        return self._row_on_obj("annotation", obj_id, annotation_id,
                                lambda a: ctx.admin or a["author_id"] == ctx.user["id"])

    def annotation_one(self, ctx: Ctx, obj_id: str, annotation_id: str):
        a = self._row_on_obj("annotation", obj_id, annotation_id, lambda a: a["id"] in [
            r["id"] for r in visible_annotations(ctx, a["obj_id"])])
        return self.ok(self.store.annotation_dict(a))

    def annotation_put(self, ctx: Ctx, obj_id: str, annotation_id: str):
        st = self.store
        a = self._annotation_for_update(ctx, obj_id, annotation_id)
        body = pydantic_load(AnnotationPut, ctx.json())
        origin, data, group_ids = a["origin"], loads(a["data"]), loads(a["group_ids"])
        if body.group_ids is not None:
            group_ids = sorted(set(body.group_ids))
            self._check_groups(group_ids)
        if body.origin is not None and body.origin != origin:
            if st.q1("SELECT 1 FROM annotations WHERE obj_id = ? AND origin = ?", (obj_id, body.origin)):
                raise self._duplicate_annotation(obj_id, body.origin)
            origin = body.origin
        if body.data is not None:
            data = body.data
        st.x("UPDATE annotations SET origin = ?, data = ?, group_ids = ?, modified = ? WHERE id = ?",
             (origin, dumps(data), dumps(group_ids), utcnow(), a["id"]))
        return self.ok()

    def annotation_delete(self, ctx: Ctx, obj_id: str, annotation_id: str):
        a = self._annotation_for_update(ctx, obj_id, annotation_id)
        self.store.x("DELETE FROM annotations WHERE id = ?", (a["id"],))
        return self.ok()
