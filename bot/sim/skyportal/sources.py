"""Handlers of the SkyPortal stand-in for sources: POST/GET/HEAD/DELETE /api/sources[/obj_id], the groups of a
source, and POST/PATCH /api/source_groups (save to / invite / unsave groups).
"""

from __future__ import annotations

from typing import Callable

from bot.ids import is_object_id
from bot.sim.skyportal.context import MAX_SOURCES_PER_PAGE, Ctx, page_args
from bot.sim.skyportal.listing import list_query, obj_page, summary_page
from bot.sim.skyportal.coords import galactic
from bot.sim.skyportal.envelope import Handlers
from bot.sim.skyportal.errors import ApiError, Fail
from bot.sim.skyportal.schema import utcnow
from bot.sim.skyportal.validation import (
    SourceGroupsPatch,
    SourceGroupsPost,
    obj_post_load,
    pydantic_load,
)
from bot.sim.skyportal.visibility import (
    classification_reader,
    visible_annotations,
    visible_comments,
    visible_source_rows,
)


class SourcesHandlers(Handlers):
    """Sources and source_groups. `on_new_sources(ctx)` runs after a save that inserted Source rows
    (DefaultFollowups.run: the server's own follow-up requests)."""

    def __init__(self, store, on_new_sources: Callable[[Ctx], None]):
        super().__init__(store)
        self.on_new_sources = on_new_sources

    def _new_source(self, ctx: Ctx, obj_id: str, gid: int, saved_by_id: int, now: str, active: int = 1,
                    requested: int = 0) -> None:
        """Insert a Source row and note it for DefaultFollowups (which match new rows only)."""
        self.store.insert_source(obj_id, gid, saved_by_id, now, active, requested)
        ctx.inserted_sources.append((obj_id, gid))

    def sources_post(self, ctx: Ctx):
        data = ctx.json()
        data.pop("refresh_source", None)
        with self._transaction("Failed to post source"):  # every exception is wrapped (source.py:2492-2493)
            obj_id, saved = self._post_source(ctx, data)
        self.on_new_sources(ctx)
        return self.ok({"id": obj_id, "saved_to_groups": saved})

    def _post_source(self, ctx: Ctx, data: dict) -> tuple[str, list[int]]:
        st, user = self.store, ctx.user
        if "id" not in data:
            raise Fail("'id'")
        if isinstance(data["id"], (int, float)) and not isinstance(data["id"], bool):
            data["id"] = str(data["id"])
        obj_id = data["id"]
        if not isinstance(obj_id, str):
            raise Fail("Invalid/missing parameters: {'id': ['Not a valid string.']}")
        if " " in obj_id:
            raise Fail("No spaces allowed in source ID")
        if not is_object_id(obj_id):
            raise Fail("Only letters, numbers, underscores, periods, semicolons, colons, +, and - are "
                       "allowed in source ID")
        exists = st.obj(obj_id) is not None
        ra, dec = data.get("ra"), data.get("dec")
        if (ra is None or dec is None) and not exists:
            raise Fail("RA/Declination must not be null for a new Obj")
        member = st.member_group_ids(user["id"])
        if not member:
            raise Fail("You must belong to one or more groups before you can add sources.")
        accessible = ctx.accessible()
        if "group_ids" in data:
            raw = data.pop("group_ids")
            try:
                group_ids = [int(g) for g in raw]
            except (TypeError, ValueError):
                raise Fail("Invalid group_ids field. Please specify at least one valid group ID that you "
                           "belong to.") from None
            if not ctx.admin:
                for gid in group_ids:
                    if gid not in accessible:
                        raise Fail(f"Cannot find group_id {gid}. Please remove and try again.")
        else:
            group_ids = member
        group_ids = list(dict.fromkeys(group_ids))
        if not group_ids:
            raise Fail("Invalid group_ids field. Please specify at least one valid group ID that you belong to.")
        ignore: dict[int, list[int]] = {}
        if "ignore_if_in_group_ids" in data:
            raw = data["ignore_if_in_group_ids"]
            if not isinstance(raw, dict):
                raise Fail("Invalid ignore_if_in_group_ids field. Please specify a dict of group_ids to ignore.")
            try:
                ignore = {int(k): [int(g) for g in v] for k, v in raw.items()}
            except (TypeError, ValueError):
                raise Fail("Invalid ignore_if_in_group_ids field. Please specify a dict of group_ids to "
                           "ignore.") from None
        if not set(ignore) <= set(group_ids):
            raise Fail("Invalid ignore_if_in_group_ids field. Please specify a dictwhich groups are in the "
                       "group_ids field, and values are listsof group_ids for which if there is a source, "
                       "cancel saving to the associated group_id from the key")
        saver_per_group = data.pop("saver_per_group_id", None)
        if saver_per_group is not None and not ctx.admin:
            raise Fail("You must be an admin to specify a saver_per_group_id field.")
        saver_per_group = {int(k): int(v) for k, v in (saver_per_group or {}).items()}
        if not exists:
            fields = obj_post_load(data)
            st.insert_obj(obj_id, fields.pop("ra"), fields.pop("dec"),
                          {k: v for k, v in fields.items() if k != "id"})
            ignore = {}
        if set(st.existing_group_ids(group_ids)) != set(group_ids):
            raise Fail("Not all group_ids could be loaded.")
        skipped = []
        now = utcnow()
        for gid in group_ids:
            if ignore.get(gid):
                marks = ",".join("?" * len(ignore[gid]))
                hit = st.q1(f"SELECT 1 FROM sources WHERE obj_id = ? AND active = 1 AND group_id IN ({marks})",
                            [obj_id, *ignore[gid]])
                if hit:
                    skipped.append(gid)
                    continue
            if not ctx.admin:
                gu = st.group_user(gid, user["id"])
                if gu is None:
                    raise Fail(f"User is not a member of the group with ID {gid}.")
                if not gu["can_save"]:
                    raise Fail(f"User does not have power to save to group with ID {gid}.")
            saver = saver_per_group.get(gid, user["id"])
            row = st.source_row(obj_id, gid)
            if row is None:
                self._new_source(ctx, obj_id, gid, saver, now)
            elif not row["active"]:
                st.x("UPDATE sources SET active = 1, saved_by_id = ?, modified = ? WHERE id = ?",
                     (saver, now, row["id"]))
        return obj_id, sorted(set(group_ids) - set(skipped))

    def _source_groups(self, ctx: Ctx, obj_id: str, include_requested: bool, pending_only: bool) -> list[dict]:
        out = []
        for s in visible_source_rows(ctx, obj_id):
            if include_requested:
                keep = s["requested"] or s["active"]
            else:
                keep = s["active"] or pending_only
            if pending_only:
                keep = keep and not s["active"] and s["requested"]
            if not keep:
                continue
            g = self.store.group(s["group_id"])
            d = self.store.group_dict(g)
            d.update({"active": bool(s["active"]), "requested": bool(s["requested"]), "saved_at": s["saved_at"],
                      "saved_by": self.store.user_dict(self.store.user(s["saved_by_id"]))})
            out.append(d)
        return out

    def _source_dict(self, ctx: Ctx, o) -> dict:
        st = self.store
        d = st.obj_dict(o)
        acc = ctx.accessible()
        reqs = []
        for r in st.q("SELECT * FROM followup_requests WHERE obj_id = ? AND status != 'deleted' ORDER BY id",
                      (o["id"],)):
            a = st.allocation(r["allocation_id"])
            if ctx.admin or (a and a["group_id"] in acc):
                fd = st.followup_dict(r)
                fd.pop("obj", None)
                fd.pop("target_groups", None)
                reqs.append(fd)
        d["followup_requests"] = reqs
        d["assignments"] = []
        d["galaxies"] = None
        dups = set()
        for other in st.objs_within(o["ra"], o["dec"], 4 / 3600):
            if other["id"] != o["id"] and visible_source_rows(ctx, other["id"]):
                dups.add(other["id"])
        d["duplicates"] = sorted(dups) or None
        anns = sorted(visible_annotations(ctx, o["id"]), key=lambda a: a["origin"])
        d["annotations"] = [{**st.annotation_dict(a), "author": st.user_dict(st.user(a["author_id"])),
                             "type": "source"} for a in anns]
        d["classifications"] = st.classifications(o["id"], classification_reader(ctx), with_groups=True)
        gl, gb = galactic(o["ra"], o["dec"])
        d.update({"gal_lat": gb, "gal_lon": gl, "luminosity_distance": None, "dm": None,
                  "angular_diameter_distance": None, "ebv": None})
        if ctx.arg("includeTags", True):
            d["tags"] = []
        if ctx.arg("includeAssociatedObjs", True):
            d["associated_objs"] = []
        if ctx.arg("includeComments", False):
            comments = sorted(visible_comments(ctx, o["id"], None, any_channel=True),
                              key=lambda c: (c["created_at"], c["id"]), reverse=True)
            d["comments"] = [{**st.comment_dict(c), "author": st.user_dict(st.user(c["author_id"]))}
                             for c in comments]
        if ctx.arg("includePhotometry", False):
            d["photometry"] = []
        if ctx.arg("includeThumbnails", False):
            d["thumbnails"] = []
        if ctx.arg("includePhotometryExists", False):
            d["photometry_exists"] = False
        flags = st.flags(o["id"])
        if ctx.arg("includeSpectrumExists", False):
            d["spectrum_exists"] = bool(flags and flags["spectra"])
        if ctx.arg("includeCommentExists", False):
            d["comment_exists"] = bool(visible_comments(ctx, o["id"], None, any_channel=True))
        if ctx.arg("includePeriodExists", False):
            d["period_exists"] = any(isinstance(a["data"], dict) and any(k in a["data"] for k in
                                     ("period", "Period", "PERIOD")) for a in d["annotations"])
        if ctx.arg("includeCandidates", False):
            d["candidates"] = []
        d["groups"] = self._source_groups(ctx, o["id"], ctx.arg("includeRequested", False),
                                          ctx.arg("pendingOnly", False))
        return d

    def source_get(self, ctx: Ctx, obj_id: str):
        o = self.store.obj(obj_id, case_insensitive=True)
        if o is None:
            raise ApiError(404, "Source not found")
        try:
            return self.ok(self._source_dict(ctx, o))
        except ApiError:
            raise
        except Exception as e:
            raise ApiError(400, f"Cannot retrieve source: {e}") from None

    def source_head(self, ctx: Ctx, obj_id: str):
        if visible_source_rows(ctx, obj_id):
            return self.ok()
        return 404, None

    def source_groups_of(self, ctx: Ctx, obj_id: str):
        if self.store.obj(obj_id) is None:
            raise ApiError(404, "Source not found")
        rows = [s for s in visible_source_rows(ctx, obj_id) if s["active"] or s["requested"]]
        return self.ok([self.store.group_dict(self.store.group(s["group_id"])) for s in rows])

    def source_delete(self, ctx: Ctx, obj_id: str):
        data = ctx.json()
        gid = data.get("group_id")
        if gid is None:
            raise ApiError(400, "Missing required parameter `group_id`")
        try:
            gid = int(gid)
        except (TypeError, ValueError):
            raise ApiError(400, "Inadequate permissions.") from None
        if not ctx.admin and gid not in ctx.accessible():
            raise ApiError(400, "Inadequate permissions.")
        row = self.store.source_row(obj_id, gid)
        if row is None:
            raise ApiError(400, f"No such source {obj_id} in group {gid}.")
        self.store.x("UPDATE sources SET active = 0, unsaved_by_id = ?, modified = ? WHERE id = ?",
                     (ctx.user["id"], utcnow(), row["id"]))
        return self.ok()

    def sources_list(self, ctx: Ctx):
        """GET /api/sources (SP handlers/api/source.py:2040-2420, over get_sources, handlers/api/sources.py:528-2655;
        cited below as sources.py). See `listing.py` for what is filtered, sorted and paged, and how."""
        st = self.store
        p, n = page_args(ctx, 100, MAX_SOURCES_PER_PAGE)  # source.py:2050-2057, :121-122 (100, max 500)
        q = list_query(ctx)
        if q.save_summary:
            return self.ok(summary_page(st, q, p, n))
        data, obj_ids = obj_page(st, q, p, n)
        out = []
        reader = classification_reader(ctx)
        for oid in obj_ids:
            o = st.obj(oid)
            d = st.obj_dict(o)
            # every Source row of the obj the user may read, saved or not, oldest first (sources.py:2151-2203)
            d["groups"] = [{**st.group_dict(st.group(s["group_id"])), "active": bool(s["active"]),
                            "requested": bool(s["requested"]), "saved_at": s["saved_at"],
                            "saved_by": st.user_dict(st.user(s["saved_by_id"]))}
                           for s in sorted(visible_source_rows(ctx, oid), key=lambda s: (s["created_at"], s["id"]))]
            gl, gb = galactic(o["ra"], o["dec"])
            d.update({"gal_lon": gl, "gal_lat": gb, "luminosity_distance": None, "dm": None,
                      "angular_diameter_distance": None})
            d["classifications"] = st.classifications(oid, reader)  # groups [], votes [] (sources.py:2290-2307)
            d["annotations"] = [st.annotation_dict(a) for a in sorted(  # sources.py:2315-2326: by created_at
                visible_annotations(ctx, oid), key=lambda a: (a["created_at"], a["id"]))]
            out.append(d)
        data["sources"] = out
        return self.ok(data)

    def source_groups_post(self, ctx: Ctx):
        body = pydantic_load(SourceGroupsPost, ctx.json())
        st = self.store
        if not body.inviteGroupIds and not body.unsaveGroupIds:
            raise ApiError(400, "Missing required parameter: one of either unsaveGroupIds or inviteGroupIds "
                                "must be provided")
        if st.obj(body.objId) is None:
            raise ApiError(404, f"Obj {body.objId} not found")
        acc = ctx.accessible()
        now = utcnow()
        st.begin()
        try:
            for gid in body.inviteGroupIds:
                active, requested = (1, 0) if gid in acc else (0, 1)
                row = st.source_row(body.objId, gid)
                if row is None:
                    if st.group(gid) is None:
                        raise ApiError(500, '(psycopg2.errors.ForeignKeyViolation) insert or update on table '
                                            '"sources" violates foreign key constraint "sources_group_id_fkey"')
                    self._new_source(ctx, body.objId, gid, ctx.user["id"], now, active, requested)
                elif not row["active"]:
                    st.x("UPDATE sources SET active = ?, requested = ?, modified = ? WHERE id = ?",
                         (active, requested, now, row["id"]))
                else:
                    raise ApiError(400, f"Source already saved to group w/ ID {gid}")
            for gid in body.unsaveGroupIds:
                row = st.source_row(body.objId, gid)
                if row is None:
                    raise ApiError(400, "Specified source is not saved to group from which it was to be unsaved.")
                st.x("UPDATE sources SET active = 0, unsaved_by_id = ?, unsaved_at = ?, modified = ? WHERE id = ?",
                     (ctx.user["id"], now, now, row["id"]))
        except BaseException:
            st.rollback()
            raise
        st.commit()
        self.on_new_sources(ctx)
        return self.ok({})

    def source_groups_patch(self, ctx: Ctx, obj_id: str):
        body = pydantic_load(SourceGroupsPatch, ctx.json())
        row = self.store.source_row(obj_id, body.groupID)
        if row is None:
            raise ApiError(500, "'NoneType' object has no attribute 'active'")
        self.store.x("UPDATE sources SET active = ?, requested = ?, modified = ? WHERE id = ?",
                     (int(body.active), int(body.requested), utcnow(), row["id"]))
        return self.ok()
