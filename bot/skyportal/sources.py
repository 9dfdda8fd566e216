"""The SkyPortal client's source, comment and annotation calls (SP 1, 2), and their results.

Mixed into :class:`bot.skyportal.client.SkyPortalClient`; see :mod:`bot.skyportal.endpoints`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.skyportal.endpoints import Endpoints, as_id, obj_path
from bot.skyportal.errors import SkyPortalError

_ORIGIN_RE = re.compile(r"^\w+")  # SP 2.2


@dataclass(frozen=True)
class SaveResult:
    """Outcome of a save, per requested group id (:meth:`SkyPortalClient.post_source`).

    saved: the source is saved (active) to it after this call (`saved_to_groups`, SP 1.1; a
    ``POST /api/sources`` never leaves a pending invitation); missing: the server answered success but
    did not list the group (treat as not saved). Which groups it was saved to before is the save kind's
    business (it reads the source first and posts only the others).
    """

    saved: list[int]
    missing: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class CommentResult:
    """Outcome of :meth:`SkyPortalClient.post_comment`: merged is True when SkyPortal already held the same
    comment (same text, author and groups) and answered its id with "Same comment already exists."."""

    comment_id: int
    merged: bool = False


@dataclass
class SourceView:
    """What Fritz holds of one source: ONE ``GET /api/sources/{id}?includeRequested=true`` (SP 1.3, 8).

    exists: False after a 404 (no Obj: then it has no groups, follow-up requests nor annotations).
    groups: group id -> row (``active``, ``requested``, ``saved_at``) for active and requested rows.
    followup_requests: every request whose status is not "deleted" (SP 1.3 leaves deleted ones out;
    `SkyPortalClient.followup_requests` lists them too).
    created: set by the bot when its own save created the Obj after this view was read (so the Obj has no
    request, deleted or not, but the ones the bot added to `followup_requests` since).
    """

    obj_id: str
    exists: bool
    groups: dict[int, dict] = field(default_factory=dict)
    followup_requests: list[dict] = field(default_factory=list)
    annotations: list[dict] = field(default_factory=list)
    created: bool = False

    @property
    def active_groups(self) -> set[int]:
        return {gid for gid, g in self.groups.items() if g.get("active", True) is not False}

    def annotation_id(self, origin: str) -> int | None:
        return _find_annotation(self.annotations, origin)


class SourceCalls(Endpoints):
    """``/api/sources``: one read of a source, the save, comments and annotations."""

    def source_view(self, obj_id: str) -> SourceView:
        """``GET /api/sources/{obj_id}?includeRequested=true`` (SP 1.3): its groups (active and requested),
        follow-up requests (not deleted) and annotations; ``exists=False`` on 404 (no such Obj).

        Any existing Obj gives 200, saved or not (``groups == []``).
        """
        path = f"/api/sources/{obj_path(obj_id)}"
        try:
            src = self._get(path, {"includeRequested": "true"})
        except SkyPortalError as e:
            if e.status == 404:
                return SourceView(obj_id, False)
            raise
        if not isinstance(src, dict):
            raise SkyPortalError(200, f"no source in answer: {src!r}", "GET", path)
        return SourceView(obj_id, True, _group_rows(src),
                          [r for r in src.get("followup_requests") or [] if isinstance(r, dict)],
                          [a for a in src.get("annotations") or [] if isinstance(a, dict)])

    def post_source(
        self, obj_id: str, group_ids: Iterable[int], ra: float | None = None, dec: float | None = None
    ) -> SaveResult:
        """Save to groups with ONE ``POST /api/sources`` (idempotent, SP 1.1); nothing is read after it.

        ``ra``/``dec`` are sent when known (required for a new Obj, not written for an existing one).
        ``saved_to_groups`` lists every requested group the source is now saved to (already saved ones
        included, SP 1.1), reported as ``saved``; a requested group it leaves out is ``missing``.
        """
        gids = list(dict.fromkeys(as_id("group id", g) for g in group_ids))
        obj_path(obj_id)
        body: dict[str, Any] = {"id": obj_id, "group_ids": gids}
        if ra is not None and dec is not None:
            body["ra"], body["dec"] = float(ra), float(dec)
        data = self.transport.request("POST", "/api/sources", body=body, retry=True)
        listed = data.get("saved_to_groups") if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise SkyPortalError(200, f"no saved_to_groups in answer: {data!r}", "POST", "/api/sources")
        listed = {g for g in listed if isinstance(g, int)}
        return SaveResult([g for g in gids if g in listed], [g for g in gids if g not in listed])

    # -- comments and annotations ----------------------------------------------------------------
    def post_comment(self, obj_id: str, text: str, group_ids: Iterable[int] | None = None) -> "CommentResult":
        """``POST /api/sources/{obj_id}/comments`` (SP 2.1): the comment id, and whether SkyPortal merged it.

        Without ``group_ids`` the comment goes to the sitewide public group. An identical comment
        (same text, author, groups) returns the existing id ("Same comment already exists."), which is
        why this call is retried safely.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("comment text is empty")
        body: dict[str, Any] = {"text": text}
        if group_ids is not None:
            gl = [as_id("group id", g) for g in group_ids]
            if gl:
                body["group_ids"] = gl
        data = self.transport.request(  # unmasked: only its id and whether it was merged are returned
            "POST", f"/api/sources/{obj_path(obj_id)}/comments", body=body, retry=True, unmasked=True
        )
        if not isinstance(data, dict) or "comment_id" not in data:
            raise SkyPortalError(200, f"no comment_id in answer: {data!r}", "POST", f"/api/sources/{obj_id}/comments")
        merged = "same comment already exists" in str(data.get("message") or "").lower()
        return CommentResult(int(data["comment_id"]), merged)

    def annotations(self, obj_id: str) -> list[dict]:
        """``GET /api/sources/{obj_id}/annotations`` (SP 2.2)."""
        data = self._get(f"/api/sources/{obj_path(obj_id)}/annotations")
        return data if isinstance(data, list) else []

    def upsert_annotation(
        self, obj_id: str, origin: str, data: Mapping[str, Any], group_ids: Iterable[int] | None = None
    ) -> int:
        """Create or update the annotation of ``origin`` on ``obj_id`` (unique per (obj, origin), SP 2.2).

        GET the annotations; PUT ``.../annotations/{id}`` if one has this origin, else POST; a POST
        answered 400 "Annotation already exists" (a race, or a retried POST that had landed) is
        followed by a re-GET and a PUT. Returns the annotation id. Without ``group_ids`` a new
        annotation goes to all of the bot's groups.
        """
        return self._upsert(obj_id, origin, *_annotation(obj_id, origin, data, group_ids))[0]

    def annotate(
        self, obj_id: str, origin: str, data: Mapping[str, Any], group_ids: Iterable[int] | None = None,
        annotation_id: int | None = None,
    ) -> tuple[int, bool]:
        """Create or update the ``origin`` annotation in one request when possible; (id, created).

        With a known ``annotation_id`` (journaled from an earlier call): ``PUT`` it. Otherwise ``POST``.
        A PUT refused (the annotation is gone or not ours, 400/403/404) or a POST answered "Annotation
        already exists" falls back to :meth:`upsert_annotation` (read the annotations, then PUT or POST).
        """
        base, body = _annotation(obj_id, origin, data, group_ids)
        try:
            if annotation_id is not None:
                return self._put_annotation(base, as_id("annotation id", annotation_id), body), False
            return self._post_annotation(base, body), True
        except SkyPortalError as e:
            exists = annotation_id is None and e.status == 400 and e.says("already exists")
            if not exists and not (annotation_id is not None and e.status in (400, 403, 404)):
                raise
        return self._upsert(obj_id, origin, base, body)

    def _upsert(self, obj_id: str, origin: str, base: str, body: dict[str, Any]) -> tuple[int, bool]:
        """Read the annotations once: PUT the one of ``origin``, else POST (a lost race: re-read, PUT);
        (id, whether that read found none)."""
        existing = _find_annotation(self.annotations(obj_id), origin)
        if existing is not None:
            return self._put_annotation(base, existing, body), False
        try:
            return self._post_annotation(base, body), True
        except SkyPortalError as e:
            if e.status == 400 and e.says("already exists"):
                again = _find_annotation(self.annotations(obj_id), origin)
                if again is not None:
                    return self._put_annotation(base, again, body), True
            raise

    def _put_annotation(self, base: str, ann_id: int, body: dict[str, Any]) -> int:
        self.transport.request("PUT", f"{base}/{int(ann_id)}", body=body, retry=True)
        return int(ann_id)

    def _post_annotation(self, base: str, body: dict[str, Any]) -> int:
        res = self.transport.request("POST", base, body=body, retry=True)
        if not isinstance(res, dict) or "annotation_id" not in res:
            raise SkyPortalError(200, f"no annotation_id in answer: {res!r}", "POST", base)
        return int(res["annotation_id"])


def _group_rows(src: dict | None) -> dict[int, dict]:
    if not isinstance(src, dict):
        return {}
    return {g["id"]: g for g in src.get("groups") or [] if isinstance(g, dict) and "id" in g}


def _annotation(obj_id: str, origin: str, data: Mapping[str, Any],
                group_ids: Iterable[int] | None) -> tuple[str, dict[str, Any]]:
    """The annotations' path of ``obj_id`` and the one body of a POST or PUT of ``origin`` (SP 2.2)."""
    if not isinstance(origin, str) or not _ORIGIN_RE.match(origin):
        raise ValueError(f"annotation origin {origin!r} must start with a word character")
    if not isinstance(data, Mapping):
        raise ValueError("annotation data must be a mapping")
    base = f"/api/sources/{obj_path(obj_id)}/annotations"
    body: dict[str, Any] = {"origin": origin, "data": dict(data)}
    gl = None if group_ids is None else [as_id("group id", g) for g in group_ids]
    if gl:
        body["group_ids"] = gl
    return base, body


def _find_annotation(anns: list[dict], origin: str) -> int | None:
    for a in anns:
        if isinstance(a, dict) and a.get("origin") == origin and a.get("id") is not None:
            return int(a["id"])
    return None
