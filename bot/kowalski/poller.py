"""The poller: the alerts new since the last committed poll, with their cutouts and histories.

Why an overlapping window: `candidate.jd` is the exposure time, not the ingestion time, and Kowalski
ingests per Kafka topic with concurrent workers, so an alert with an older jd can appear after one with
a newer jd (kowalski-api.md gotcha 10). A poll therefore scans `[cursor - overlap_days, until_jd)`
and drops the candids already handled (`state.known_candids`): an alert is lost only if it shows up in
Kowalski more than `overlap_days` after its exposure, and none is processed twice.

A poll:
1. pages through the window (pre-filter AND-ed in, cutouts excluded), keyset-paginated on
   (`candidate.jd`, `candid`): pages never skip or repeat alerts, whatever the page size;
2. keeps the alerts not yet handled;
3. fetches their cutouts by candid and their objects' histories (`ZTF_alerts` candidates +
   `ZTF_alerts_aux` prv_candidates), in batched concurrent queries matched back by content;
4. returns a `PollBatch`; nothing is stored until `commit(batch)`, so a poll that raises leaves the
   cursor where it was and the next poll gets everything again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from bot.kowalski import queries as Q
from bot.kowalski.client import KowalskiClient, KowalskiError
from bot.timeutil import utc_now_jd

log = logging.getLogger(__name__)

MAX_BODY = 1024**2  # Kowalski's request body limit (aiohttp client_max_size)
BODY_BUDGET = MAX_BODY // 4  # keep each request body well under it


class PollState(Protocol):
    """What the poller needs from the journal."""

    def known_candids(self, candids: Iterable[int]) -> set[int]: ...

    def get_state(self, key: str) -> str | None: ...

    def set_state(self, key: str, value: str) -> None: ...


class MemoryPollState:
    """An in-memory `PollState` (tests, `--once` dry runs)."""

    def __init__(self) -> None:
        self.handled: set[int] = set()
        self.values: dict[str, str] = {}

    def known_candids(self, candids: Iterable[int]) -> set[int]:
        return {int(c) for c in candids if int(c) in self.handled}

    def get_state(self, key: str) -> str | None:
        return self.values.get(key)

    def set_state(self, key: str, value: str) -> None:
        self.values[key] = str(value)

    def mark_handled(self, candids: Iterable[int]) -> None:
        self.handled.update(int(c) for c in candids)


@dataclass
class PollBatch:
    """The result of one poll (see module docstring)."""

    alerts: list[dict]  # new alerts: objectId, candid, candidate, cutout* (stampData bytes), ...; jd order
    # objectId -> candidate-like dicts: every detection and non-detection Kowalski knows (ZTF_alerts
    # candidates + aux prv_candidates of the allowed programids), deduplicated on candid (detections) or
    # (jd, fid) (non-detections), in jd order; may hold detections later than some alerts of the batch
    histories: dict[str, list[dict]]
    window: tuple[float, float]  # [jd_from, jd_to) scanned
    n_found: int  # alerts in the window passing the pre-filter
    n_new: int  # of which not handled yet (== len(alerts))
    n_requests: int  # HTTP requests made by this poll
    missing_cutouts: list[int] = field(default_factory=list)  # candids kept in `alerts` without cutouts
    cursor: float | None = None  # stored by commit(): the next poll scans from cursor - overlap_days
    n_pages: int = 0
    truncated: bool = False  # more new alerts than max_new: poll again right away
    seconds: float = 0.0

    @property
    def candids(self) -> list[int]:
        return [int(a["candid"]) for a in self.alerts]


def _chunks(seq: Sequence, n: int) -> list[Sequence]:
    return [seq[i:i + n] for i in range(0, len(seq), n)]


def _has_stamp(cutout: Any) -> bool:
    return isinstance(cutout, Mapping) and isinstance(cutout.get("stampData"), (bytes, bytearray)) \
        and len(cutout["stampData"]) > 0


def _history_key(entry: Mapping) -> tuple:
    """Detections are identified by candid (two detections can share an exposure and a filter);
    non-detections, which have no candid, by (jd, fid)."""
    candid = entry.get("candid")
    if candid is not None:
        return ("candid", int(candid))
    return ("jd-fid", entry.get("jd"), entry.get("fid"))


def _float_state(value: str | None, key: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"state {key!r} holds {value!r}, not a JD") from None


class Poller:
    """Polls Kowalski for new alerts (see module docstring)."""

    def __init__(
        self,
        client: KowalskiClient,
        state: PollState,
        prefilter: Mapping[str, Any] | None = None,
        page_size: int = 10000,
        overlap_days: float = 1.0,
        cutout_batch: int = 500,
        history_batch: int = 200,
        mag_max: float | None = 19.0,
        programids: Sequence[int] = (1, 2),
        state_key: str = "kowalski.cursor",
        positive_only: bool = True,
        max_new: int | None = None,
        batch_group: int | None = None,
        now_jd: Callable[[], float] | None = None,
    ) -> None:
        """
        prefilter: extra MongoDB cuts (from the configuration) AND-ed with the default ones
            (positive subtraction, programid in `programids`, magpsf < `mag_max`).
        positive_only: keep only positive subtractions (candidate.isdiffpos "t"/"1").
        max_new: at most this many new alerts per poll (None: all); the rest is left for the next poll
            (`batch.truncated`), which bounds memory after a long outage (cutouts are ~40 kB/alert).
        batch_group: queries sent per `client.batch` call (default 2 x the client's threads), which
            bounds what a transient failure makes the client re-send.
        now_jd: the clock (default: UTC now); the simulator's SimClock.now_jd in demos.
        """
        if page_size < 1 or cutout_batch < 1 or history_batch < 1:
            raise ValueError("page_size, cutout_batch and history_batch must be >= 1")
        if overlap_days < 0:
            raise ValueError("overlap_days must be >= 0")
        if max_new is not None and max_new < 1:
            raise ValueError("max_new must be >= 1 (or None)")
        self.client = client
        self.state = state
        self.page_size = int(page_size)
        self.overlap_days = float(overlap_days)
        self.cutout_batch = int(cutout_batch)
        self.history_batch = int(history_batch)
        self.programids = tuple(int(p) for p in programids)
        self.mag_max = mag_max
        self.state_key = state_key
        self.max_new = max_new
        self.batch_group = int(batch_group) if batch_group else 2 * getattr(client, "max_threads", 4)
        self.now_jd = now_jd or utc_now_jd
        self.cuts = Q.prefilter(self.programids, mag_max, prefilter, positive_only=positive_only)
        probe = Q.poll_page(0.0, 1.0, self.cuts, limit=self.page_size, after=(0.5, 2**63 - 1),
                            max_time_ms=self._max_time_ms)
        if Q.body_size(probe) > BODY_BUDGET:
            raise ValueError("the pre-filter makes the polling request body too large")

    @property
    def _max_time_ms(self) -> int | None:
        return getattr(self.client, "max_time_ms", None)

    # ---- cursor ------------------------------------------------------------------------------------
    @property
    def cursor(self) -> float | None:
        """The committed cursor (JD), or None before the first commit."""
        return _float_state(self.state.get_state(self.state_key), self.state_key)

    def window(self, until_jd: float | None = None, since_jd: float | None = None) -> tuple[float, float]:
        """The [jd_from, jd_to) the next poll would scan."""
        until = float(until_jd) if until_jd is not None else float(self.now_jd())
        if since_jd is not None:
            return float(since_jd), until
        cursor = self.cursor
        start = cursor if cursor is not None else until
        return start - self.overlap_days, until

    def commit(self, batch: PollBatch) -> None:
        """Store the batch's cursor (never moving it backwards). The caller records the handled candids
        (journal) in the same transaction."""
        if batch.cursor is None:
            return
        old = self.cursor
        new = batch.cursor if old is None else max(old, batch.cursor)
        self.state.set_state(self.state_key, repr(float(new)))

    # ---- poll --------------------------------------------------------------------------------------
    def poll(self, until_jd: float | None = None, since_jd: float | None = None) -> PollBatch:
        """One poll (see module docstring). Raises KowalskiError when Kowalski fails after retries."""
        t0 = time.monotonic()
        req0 = self.client.requests
        jd_from, jd_to = self.window(until_jd, since_jd)
        if not jd_from < jd_to:
            log.info("empty poll window [%.5f, %.5f)", jd_from, jd_to)
            return PollBatch([], {}, (jd_from, jd_to), 0, 0, 0, cursor=None)

        found, n_pages = self._scan(jd_from, jd_to)
        known = self.state.known_candids([a["candid"] for a in found]) if found else set()
        new = [a for a in found if int(a["candid"]) not in known]
        cursor, truncated = jd_to, False
        if self.max_new is not None and len(new) > self.max_new:
            # keep the earliest max_new (jd, candid); the next poll restarts at the first one left out
            cursor, truncated = float(new[self.max_new]["candidate"]["jd"]), True
            new = new[: self.max_new]

        missing = self._attach_cutouts(new)
        histories = self._histories(new)
        batch = PollBatch(
            alerts=new, histories=histories, window=(jd_from, jd_to), n_found=len(found), n_new=len(new),
            n_requests=self.client.requests - req0, missing_cutouts=missing, cursor=cursor,
            n_pages=n_pages, truncated=truncated, seconds=time.monotonic() - t0,
        )
        log.info("poll [%.5f, %.5f): %d found, %d new, %d objects, %d without cutouts, %d requests, %.2f s%s",
                 jd_from, jd_to, batch.n_found, batch.n_new, len(histories), len(missing), batch.n_requests,
                 batch.seconds, " (truncated)" if truncated else "")
        return batch

    def _scan(self, jd_from: float, jd_to: float) -> tuple[list[dict], int]:
        """Every alert of the window passing the pre-filter, without cutouts, in (jd, candid) order."""
        found: dict[int, dict] = {}
        after: tuple[float, int] | None = None
        pages = 0
        while True:
            body = Q.poll_page(jd_from, jd_to, self.cuts, limit=self.page_size, after=after,
                               max_time_ms=self._max_time_ms)
            docs = self.client.query(body).get("data") or []
            pages += 1
            for doc in docs:
                doc.pop("_id", None)
                found.setdefault(int(doc["candid"]), doc)
            if len(docs) < self.page_size:
                break
            last = docs[-1]
            key = (float(last["candidate"]["jd"]), int(last["candid"]))
            if after is not None and key <= after:  # the server ignored the sort: do not loop forever
                raise KowalskiError("Kowalski returned a page out of (candidate.jd, candid) order")
            after = key
        alerts = sorted(found.values(), key=lambda a: (a["candidate"]["jd"], int(a["candid"])))
        return alerts, pages

    def _run(self, bodies: list[dict]) -> list[dict]:
        """Send bodies in groups of `batch_group` concurrent queries; responses are unordered."""
        out: list[dict] = []
        for group in _chunks(bodies, self.batch_group):
            out.extend(self.client.batch(group))
        return out

    def _cutout_chunks(self, candids: list[int]) -> list[list[int]]:
        size = self.cutout_batch
        while True:
            chunks = _chunks(candids, size)
            if size == 1 or all(Q.body_size(Q.cutouts_by_candid(c, max_time_ms=self._max_time_ms)) <= BODY_BUDGET
                                for c in chunks[:1]):
                return chunks
            size = max(1, size // 2)

    def _attach_cutouts(self, alerts: list[dict]) -> list[int]:
        """Fetch the cutouts of `alerts` (by candid) into them; returns the candids left without."""
        if not alerts:
            return []
        candids = [int(a["candid"]) for a in alerts]
        bodies = [Q.cutouts_by_candid(c, max_time_ms=self._max_time_ms) for c in self._cutout_chunks(candids)]
        got: dict[int, dict] = {}
        for resp in self._run(bodies):
            for doc in resp.get("data") or []:
                if "candid" in doc:
                    got[int(doc["candid"])] = doc
        missing = []
        for alert in alerts:
            doc = got.get(int(alert["candid"])) or {}
            complete = True
            for name in Q.CUTOUTS:
                cutout = doc.get(name)
                if _has_stamp(cutout):
                    alert[name] = cutout
                else:
                    alert[name] = None
                    complete = False
            if not complete:
                missing.append(int(alert["candid"]))
        if missing:
            log.warning("%d alert(s) without cutouts (kept, unscorable): %s", len(missing), missing[:10])
        return missing

    def _histories(self, alerts: list[dict]) -> dict[str, list[dict]]:
        """objectId -> every detection and non-detection known to Kowalski, deduplicated, in jd order."""
        oids = list(dict.fromkeys(str(a["objectId"]) for a in alerts))
        if not oids:
            return {}
        chunks = _chunks(oids, self.history_batch)
        chunk_of = {oid: i for i, chunk in enumerate(chunks) for oid in chunk}
        limit = self.page_size
        from_alerts: dict[str, dict[int, dict]] = {oid: {} for oid in oids}
        from_aux: dict[str, list[dict]] = {oid: [] for oid in oids}
        bodies = []
        for chunk in chunks:
            bodies.append(Q.history_alerts(chunk, self.programids, limit=limit, max_time_ms=self._max_time_ms))
            bodies.append(Q.history_aux(chunk, max_time_ms=self._max_time_ms))
        allowed = set(self.programids)
        while bodies:
            follow_up = []
            for resp in self._run(bodies):
                docs = resp.get("data") or []
                alert_docs = [d for d in docs if "candidate" in d and "objectId" in d]
                for doc in alert_docs:  # ZTF_alerts candidates
                    oid = str(doc["objectId"])
                    if oid in from_alerts:
                        cand = dict(doc["candidate"])
                        cand["candid"] = int(doc["candid"])
                        from_alerts[oid][cand["candid"]] = cand
                for doc in docs:  # ZTF_alerts_aux documents (_id = objectId)
                    if "candidate" not in doc and "_id" in doc and str(doc["_id"]) in from_aux:
                        from_aux[str(doc["_id"])] = [p for p in doc.get("prv_candidates") or []
                                                     if isinstance(p, dict) and p.get("programid") in allowed]
                if alert_docs and len(docs) >= limit:  # a full page: ask for the rest of that chunk
                    last = max(int(d["candid"]) for d in alert_docs)
                    chunk = chunks[chunk_of[str(alert_docs[0]["objectId"])]]
                    follow_up.append(Q.history_alerts(chunk, self.programids, limit=limit, after_candid=last,
                                                      max_time_ms=self._max_time_ms))
            bodies = follow_up
        histories = {}
        for oid in oids:
            merged: dict[tuple, dict] = {}
            # alert candidates first: they carry the most fields, and the values of the alert itself
            # (a later packet republishes a detection with magpsf etc. rounded to ~1e-4)
            for entry in list(from_alerts[oid].values()) + from_aux[oid]:
                merged.setdefault(_history_key(entry), entry)
            histories[oid] = sorted(merged.values(), key=lambda d: (d.get("jd") or 0.0, d.get("fid") or 0))
        return histories
