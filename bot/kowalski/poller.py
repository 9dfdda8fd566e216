"""The poller: the alerts new since the last committed poll, with their cutouts and histories.

Why an overlapping window: `candidate.jd` is the exposure time, not the ingestion time, and Kowalski
ingests per Kafka topic with concurrent workers, so an alert with an older jd can appear after one with
a newer jd (docs/contracts.md, KW 7.10). A poll therefore scans `[cursor - overlap_days, until_jd)`
and drops the candids already handled (`state.known_candids`): an alert is lost only if it shows up in
Kowalski more than `overlap_days` after its exposure, and none is processed twice.

A poll (`chunks()`):
1. pages through the window (pre-filter AND-ed in), keyset-paginated on (`candidate.jd`, `candid`):
   pages never skip or repeat alerts, whatever the page size. The scan reads only the keys
   (candid, objectId, candidate.jd), so what it holds does not grow with the alerts' size;
2. keeps the alerts not yet handled, in (jd, candid) order, and cuts them into chunks of at most
   `chunk_alerts` (None: one chunk for the whole window);
3. per chunk, fetches the full alert documents (cutouts included) by candid and their objects'
   histories (`ZTF_alerts` candidates + `ZTF_alerts_aux` prv_candidates), in batched concurrent queries
   matched back by content, and yields a `PollBatch`;
4. nothing is stored until `commit(batch)`: a chunk's cursor is the jd of the first new alert left for
   the next chunks (the window's end for the last chunk), so a poll that raises, or a caller that stops
   between chunks, leaves the cursor at the last committed chunk and the next poll gets the rest again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from bot.core.features import history_key
import bot.kowalski.queries as Q
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
    """An in-memory `PollState`: a poll that keeps nothing (`btsbot backtest --kowalski`, tests)."""

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
    n_found: int  # alerts of the window passing the pre-filter (scanned for this chunk)
    n_new: int  # of which not handled yet (== len(alerts))
    n_requests: int  # HTTP requests made by this poll
    missing_cutouts: list[int] = field(default_factory=list)  # candids kept in `alerts` without cutouts
    cursor: float | None = None  # stored by commit(): the next poll scans from cursor - overlap_days
    n_pages: int = 0
    truncated: bool = False  # more new alerts than chunk_alerts: more chunks follow (poll again)
    seconds: float = 0.0

    @property
    def candids(self) -> list[int]:
        return [int(a["candid"]) for a in self.alerts]


def _chunks(seq: Sequence, n: int) -> list[Sequence]:
    return [seq[i:i + n] for i in range(0, len(seq), n)]


def _has_stamp(cutout: Any) -> bool:
    return isinstance(cutout, Mapping) and isinstance(cutout.get("stampData"), (bytes, bytearray)) \
        and len(cutout["stampData"]) > 0


def _float_state(value: str | None, key: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"state {key!r} holds {value!r}, not a JD") from None


STATE_KEY = "kowalski.cursor"  # the journal state entry holding the committed cursor (JD)


class Poller:
    """Polls Kowalski for new alerts (see module docstring)."""

    source = "kowalski"  # the alert source, as the journal records it (`bot.core.drift.SCORE_KEYS`)

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
        chunk_alerts: int | None = None,
        now_jd: Callable[[], float] | None = None,
    ) -> None:
        """
        prefilter: extra MongoDB cuts (from the configuration) AND-ed with the default ones
            (positive subtraction, programid in `programids`, magpsf < `mag_max`).
        chunk_alerts: at most this many new alerts per chunk (None: the whole window in one); a chunk's
            cutouts and histories are fetched only when the previous chunk has been handled, which bounds
            memory whatever the window (`kowalski.chunk_alerts`).
        now_jd: the clock (default: UTC now); the simulator's SimClock.now_jd in demos.
        """
        if page_size < 1 or cutout_batch < 1 or history_batch < 1:
            raise ValueError("page_size, cutout_batch and history_batch must be >= 1")
        if overlap_days < 0:
            raise ValueError("overlap_days must be >= 0")
        if chunk_alerts is not None and chunk_alerts < 1:
            raise ValueError("chunk_alerts must be >= 1 (or None)")
        self.client = client
        self.state = state
        self.page_size = int(page_size)
        self.overlap_days = float(overlap_days)
        self.cutout_batch = int(cutout_batch)
        self.history_batch = int(history_batch)
        self.programids = tuple(int(p) for p in programids)
        self.mag_max = mag_max
        self.chunk_alerts = int(chunk_alerts) if chunk_alerts is not None else None
        # queries per `client.batch` call: bounds what a transient failure makes the client re-send
        self.batch_group = 2 * getattr(client, "max_threads", 4)
        self.now_jd = now_jd or utc_now_jd
        self.cuts = self._build_cuts(prefilter)

    def _build_cuts(self, prefilter: Mapping[str, Any] | None) -> dict:
        """The broker's pre-filter (a subclass for another broker builds its own)."""
        cuts = Q.prefilter(self.programids, self.mag_max, prefilter)
        probe = Q.poll_page(0.0, 1.0, cuts, limit=self.page_size, after=(0.5, 2**63 - 1),
                            max_time_ms=self._max_time_ms)
        if Q.body_size(probe) > BODY_BUDGET:
            raise ValueError("the pre-filter makes the polling request body too large")
        return cuts

    @property
    def _max_time_ms(self) -> int | None:
        return getattr(self.client, "max_time_ms", None)

    # ---- cursor ------------------------------------------------------------------------------------
    @property
    def cursor(self) -> float | None:
        """The committed cursor (JD), or None before the first commit."""
        return _float_state(self.state.get_state(STATE_KEY), STATE_KEY)

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
        self.state.set_state(STATE_KEY, repr(float(new)))

    # ---- poll --------------------------------------------------------------------------------------
    def poll(self, until_jd: float | None = None, since_jd: float | None = None) -> PollBatch:
        """The first chunk of a poll (the whole window when `chunk_alerts` is None); `batch.truncated`
        says that more follow: commit it and poll again."""
        chunks = self.chunks(until_jd, since_jd)
        try:
            return next(chunks)
        finally:
            chunks.close()

    def chunks(self, until_jd: float | None = None, since_jd: float | None = None) -> Iterator[PollBatch]:
        """The new alerts of the window, chunk by chunk (see module docstring); always yields at least one
        batch (the last one, `truncated` False, carries the window's end as its cursor). The scan goes on
        lazily between chunks: the caller handles and commits a chunk before the next one is fetched.
        Raises KowalskiError when Kowalski fails after retries."""
        jd_from, jd_to = self.window(until_jd, since_jd)
        if not jd_from < jd_to:
            log.info("empty poll window [%.5f, %.5f)", jd_from, jd_to)
            yield PollBatch([], {}, (jd_from, jd_to), 0, 0, 0, cursor=None)
            return
        size = self.chunk_alerts
        t0, req0 = time.monotonic(), self.client.requests
        pending: list[dict] = []  # keys of new alerts not yet yielded, in (jd, candid) order
        n_found = n_pages = 0
        for page in self._pages(jd_from, jd_to):
            n_pages += 1
            n_found += len(page)
            known = self.state.known_candids([d["candid"] for d in page]) if page else set()
            pending.extend(d for d in page if int(d["candid"]) not in known)
            while size is not None and len(pending) > size:
                # the earliest `size` (jd, candid); the cursor stops at the first one left out
                keys, pending = pending[:size], pending[size:]
                cursor = float(pending[0]["candidate"]["jd"])
                yield self._batch(keys, (jd_from, jd_to), n_found, n_pages, cursor, True, t0, req0)
                keys = None
                t0, req0, n_found, n_pages = time.monotonic(), self.client.requests, 0, 0
        yield self._batch(pending, (jd_from, jd_to), n_found, n_pages, jd_to, False, t0, req0)

    def _batch(self, keys: list[dict], window: tuple[float, float], n_found: int, n_pages: int, cursor: float,
               truncated: bool, t0: float, req0: int) -> PollBatch:
        """Fetch the documents and histories of the alerts `keys` (scan results) into a PollBatch."""
        alerts, missing = self._fetch_alerts(keys)
        histories = self._histories(alerts)
        batch = PollBatch(
            alerts=alerts, histories=histories, window=window, n_found=n_found, n_new=len(alerts),
            n_requests=self.client.requests - req0, missing_cutouts=missing, cursor=cursor,
            n_pages=n_pages, truncated=truncated, seconds=time.monotonic() - t0,
        )
        log.info("poll [%.5f, %.5f): %d found, %d new, %d objects, %d without cutouts, %d requests, %.2f s%s",
                 window[0], window[1], batch.n_found, batch.n_new, len(histories), len(missing), batch.n_requests,
                 batch.seconds, " (chunk; more follow)" if truncated else "")
        return batch

    def fetch(self, keys: Sequence[Mapping]) -> tuple[list[dict], dict[str, list[dict]]]:
        """The documents (cutouts included) of alerts by key (candid, objectId, candidate.jd), in their
        order, and their objects' histories, as a chunk gets them: for alerts handled earlier that must be
        scored again (the fp32 scores of a source acted on). Stores nothing; raises KowalskiError."""
        alerts, _ = self._fetch_alerts([dict(k) for k in keys])
        return alerts, self._histories(alerts)

    def _pages(self, jd_from: float, jd_to: float) -> Iterator[list[dict]]:
        """The keys (candid, objectId, candidate.jd) of every alert of the window passing the pre-filter,
        page by page, in (jd, candid) order."""
        after: tuple[float, int] | None = None
        while True:
            body = Q.poll_page(jd_from, jd_to, self.cuts, limit=self.page_size, after=after,
                               max_time_ms=self._max_time_ms)
            docs = self.client.query(body).get("data") or []
            page = sorted(({"candid": int(d["candid"]), "objectId": d.get("objectId"),
                            "candidate": {"jd": float(d["candidate"]["jd"])}} for d in docs),
                          key=lambda d: (d["candidate"]["jd"], d["candid"]))
            del docs
            if page:
                key = (page[-1]["candidate"]["jd"], page[-1]["candid"])
                if after is not None and key <= after:  # the server ignored the sort: do not loop forever
                    raise KowalskiError("Kowalski returned a page out of (candidate.jd, candid) order")
                after = key
            full = len(page) >= self.page_size
            yield page
            if not full:
                return

    def _run(self, bodies: list[dict]) -> list[dict]:
        """Send bodies in groups of `batch_group` concurrent queries; responses are unordered."""
        out: list[dict] = []
        for group in _chunks(bodies, self.batch_group):
            out.extend(self.client.batch(group))
        return out

    def _candid_chunks(self, candids: list[int]) -> list[list[int]]:
        size = self.cutout_batch
        while True:
            chunks = _chunks(candids, size)
            if size == 1 or all(Q.body_size(Q.alerts_by_candid(c, max_time_ms=self._max_time_ms)) <= BODY_BUDGET
                                for c in chunks[:1]):
                return chunks
            size = max(1, size // 2)

    def _fetch_alerts(self, keys: list[dict]) -> tuple[list[dict], list[int]]:
        """The alert documents (cutouts included) of the scanned `keys`, in their order, and the candids
        left without a complete set of cutouts (kept: scoring marks them unscorable with the reason). An
        alert whose document vanished between the scan and the fetch is kept as its key, without cutouts."""
        if not keys:
            return [], []
        candids = [int(k["candid"]) for k in keys]
        bodies = [Q.alerts_by_candid(c, max_time_ms=self._max_time_ms) for c in self._candid_chunks(candids)]
        got: dict[int, dict] = {}
        for resp in self._run(bodies):
            for doc in resp.get("data") or []:
                if "candid" in doc:
                    doc.pop("_id", None)
                    got[int(doc["candid"])] = doc
        alerts, missing = [], []
        for key in keys:
            alert = got.pop(int(key["candid"]), None) or dict(key)
            complete = True
            for name in Q.CUTOUTS:
                if not _has_stamp(alert.get(name)):
                    alert[name] = None
                    complete = False
            if not complete:
                missing.append(int(alert["candid"]))
            alerts.append(alert)
        if missing:
            log.warning("%d alert(s) without cutouts (kept, unscorable): %s", len(missing), missing[:10])
        return alerts, missing

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
                merged.setdefault(history_key(entry), entry)
            histories[oid] = sorted(merged.values(), key=lambda d: (d.get("jd") or 0.0, d.get("fid") or 0))
        return histories
