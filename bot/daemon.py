"""The daemon: APScheduler runs `run_cycle` every `schedule.interval_minutes`; nothing else lives here.

One cycle at a time (max_instances=1, missed runs coalesced), only within `schedule.hours_utc` if set.
A cycle that fails (Kowalski down, Fritz errors, a bug on one bad alert) is one log line ("cycle failed:
...; next try at HH:MM UTC"; the traceback with -v) and the next one runs on schedule: nothing was
committed by the failed one, so the next poll picks its alerts up again. `--since` starts the first
cycle's window there (a backfill); later cycles continue from the committed cursor.

SIGTERM/SIGINT set the stop event (`run_daemon`, and `run_one_cycle` for `run --once`): the running cycle finishes the request in flight, journals its
outcome and leaves the rest pending for the next start; the process exits 0 within `grace_s`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from bot.config import Config
from bot.cycle import run_cycle
from bot.logs import SUMMARY_LOGGER, verbose
from bot.runtime import Runtime, open_runtime

log = logging.getLogger(__name__)
summary_log = logging.getLogger(SUMMARY_LOGGER)
GRACE_S = 8.0  # after a stop signal: how long the cycle in flight may take to wind down


def describe_failure(exc: BaseException) -> str:
    """One line for a failed cycle: the error's own message (they name the service, URL and key)."""
    text = str(exc).strip() or type(exc).__name__
    from bot.boom.client import BoomError
    from bot.kowalski.client import KowalskiError
    from bot.skyportal.errors import SkyPortalError

    if isinstance(exc, (KowalskiError, BoomError, SkyPortalError)):
        return text
    return f"{type(exc).__name__}: {text}"


def in_hours(now: datetime, hours: tuple[int, int] | None) -> bool:
    """Whether `now` (UTC) is inside [start, end) hours; end < start wraps past midnight."""
    if hours is None:
        return True
    start, end = hours
    h = now.hour + now.minute / 60 + now.second / 3600
    return start <= h < end if start < end else (h >= start or h < end)


def next_run(now: datetime, interval_minutes: float, hours: tuple[int, int] | None) -> datetime:
    """When the next cycle runs: now + the interval, moved to the start of the hours window if outside it."""
    t = now + timedelta(minutes=interval_minutes)
    if in_hours(t, hours):
        return t
    start = t.replace(hour=hours[0] % 24, minute=0, second=0, microsecond=0)
    return start if start > t else start + timedelta(days=1)


class CycleJob:
    """What APScheduler calls: one cycle, logged as one line, counted in the metrics."""

    def __init__(self, rt: Runtime, stop: threading.Event, metrics=None, since_jd: float | None = None,
                 now=lambda: datetime.now(timezone.utc), ops=None):
        self.rt, self.stop, self.metrics, self.since_jd, self.now = rt, stop, metrics, since_jd, now
        self.ops = ops  # bot.ops.OpsMonitor: the operator's messages, or None
        self.last_alert = now()  # when a cycle last polled an alert (the `quiet` event counts from here)
        self.idle = threading.Event()
        self.idle.set()
        self.failed_in_a_row = 0

    def __call__(self) -> bool | None:
        sched = self.rt.config.schedule
        if self.stop.is_set():
            return None
        if not in_hours(self.now(), sched.hours_utc):
            log.debug("outside schedule.hours_utc %s: no cycle", sched.hours_utc)
            return None
        self.idle.clear()
        t0 = time.perf_counter()
        try:
            report = run_cycle(self.rt, since_jd=self.since_jd, stop=self.stop)
        except Exception as exc:
            self.failed_in_a_row += 1
            if self.metrics:
                self.metrics.cycle_failed(time.perf_counter() - t0)
            nxt = next_run(self.now(), sched.interval_minutes, sched.hours_utc)
            log.error("cycle failed: %s; next try at %s UTC", describe_failure(exc), f"{nxt:%H:%M}",
                      exc_info=verbose())
            self._observe(None)
            return False
        finally:
            self.idle.set()
        self.since_jd, self.failed_in_a_row = None, 0  # a backfill's start is used until a cycle succeeds
        summary_log.info(report.summary())
        if self.metrics:
            self.metrics.cycle_ok(report, pending=len(self.rt.journal.unfinished_actions()))
        self._observe(report)
        return True

    def _observe(self, report) -> None:
        """The operational events after a cycle (`bot.ops`): metrics and, once per episode, a message."""
        if self.ops is None and self.metrics is None:
            return
        from bot.actions.guard import TRIPPED
        from bot.ops import conditions
        from bot.timeutil import palomar_night

        cfg, journal, now = self.rt.config, self.rt.journal, self.now()
        if report is not None and report.n_found:
            self.last_alert = now
        start, end = palomar_night(now)
        pending = journal.unfinished_actions()
        oldest = min((_parse_utc(a.time) for a in pending), default=None)
        found = conditions(
            failed_in_a_row=self.failed_in_a_row, max_failed=cfg.health.max_failed_cycles,
            guard_tripped=bool(journal.get_state(TRIPPED)),
            over_budget_tonight=len(journal.finished_actions("followup", "over_budget", "live", start, end)),
            oldest_pending=oldest, last_alert=self.last_alert, now=now, pending_hours=cfg.notify.pending_hours,
            quiet_hours=cfg.health.quiet_hours, in_hours=cfg.schedule.hours_utc is not None and in_hours(now, cfg.schedule.hours_utc))
        if self.metrics is not None:
            self.metrics.set_ops(found)
        if self.ops is not None:
            self.ops.observe(found)


def _parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ops_monitor(cfg: Config, journal, env=None):
    """The operator's messages of `notify:` (None when no event is asked for); the webhook URL comes from
    the environment variable `notify.webhook_env` (without it the messages are only logged)."""
    import os

    from bot.ops import OpsMonitor

    n = cfg.notify
    if not n.events:
        return None
    env = os.environ if env is None else env
    send = None
    if n.webhook_env and env.get(n.webhook_env):
        from bot.webhook import Webhook

        send = Webhook(env[n.webhook_env]).post
    else:
        log.warning("notify.events %s: no webhook (notify.webhook_env%s is not set): the events are only logged",
                    ", ".join(n.events), f" {n.webhook_env}" if n.webhook_env else "")
    return OpsMonitor(n.events, send, journal)


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set `stop` (main thread only; elsewhere the caller sets it)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())


def run_daemon(cfg: Config, rt: Runtime | None = None, stop: threading.Event | None = None, *,
               since_jd: float | None = None, grace_s: float = GRACE_S, hard_exit: bool = False) -> int:
    """Run cycles until `stop` is set (by SIGTERM/SIGINT); returns 0.

    `hard_exit` (the command line): if the cycle in flight has not wound down within `grace_s` of the
    stop (a request hanging until its timeout), exit the process at once; its action stays pending.
    """
    from apscheduler.schedulers.background import BackgroundScheduler

    from bot.metrics import Metrics, MetricsServer

    stop = stop or (rt.stop if rt else threading.Event())
    install_stop_handlers(stop)
    rt = rt or open_runtime(cfg, stop=stop)
    if rt.stop is not stop:  # an injected runtime: its transports' back-offs must wake on this stop too
        threading.Thread(target=lambda: (stop.wait(), rt.stop.set()), daemon=True).start()
    metrics = Metrics(cfg.mode, cfg.health.max_failed_cycles)
    metrics.set_pending(len(rt.journal.unfinished_actions()))
    server = MetricsServer(metrics, cfg.metrics.host, cfg.metrics.port).start() if cfg.metrics.port is not None else None
    job = CycleJob(rt, stop, metrics, since_jd, ops=ops_monitor(cfg, rt.journal))
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(job, "interval", minutes=cfg.schedule.interval_minutes, max_instances=1, coalesce=True,
                      next_run_time=datetime.now(timezone.utc), id="cycle")
    scheduler.start()
    hours = f", UTC hours {cfg.schedule.hours_utc[0]}-{cfg.schedule.hours_utc[1]}" if cfg.schedule.hours_utc else ""
    where = f"; metrics on {server.url}/metrics" if server else ""
    log.warning("btsbot %s: polling every %g min%s%s (Ctrl-C or SIGTERM to stop)", cfg.mode,
                cfg.schedule.interval_minutes, hours, where)
    wound_down = False
    try:
        stop.wait()
        log.warning("stopping: finishing the request in flight, the rest stays pending for the next start")
        scheduler.shutdown(wait=False)
        wound_down = job.idle.wait(grace_s)
    finally:
        if server:
            server.stop()
    if not wound_down:
        log.warning("the cycle did not wind down within %g s; exiting, its unfinished actions stay pending", grace_s)
        if hard_exit:
            log.warning("stopped (the request in flight abandoned; it stays pending)")
            _exit_now()
        return 0
    rt.close()
    log.warning("stopped")
    return 0


def run_one_cycle(rt: Runtime, since_jd: float | None = None, until_jd: float | None = None,
                  stop: threading.Event | None = None, grace_s: float = GRACE_S):
    """`run --once`: one cycle in a worker thread, so that a stop signal is obeyed as the daemon obeys it.
    Returns the CycleReport (None when `stop` was set before it started) or raises the cycle's error. If
    the cycle has not wound down within `grace_s` of the stop (a request hanging until its timeout), the
    process exits at once with 0; its action stays pending."""
    stop = stop or rt.stop
    if stop.is_set():
        return None
    result: dict = {}
    done = threading.Event()

    def work():
        try:
            result["report"] = run_cycle(rt, since_jd=since_jd, until_jd=until_jd, stop=stop)
        except Exception as exc:  # raised below, in the caller's thread
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="btsbot-cycle", daemon=True).start()
    while not done.wait(0.25) and not stop.is_set():
        pass
    if not done.wait(grace_s if stop.is_set() else None):
        print("btsbot: stopped; the request in flight did not finish in time and stays pending", file=sys.stderr)
        sys.stderr.flush()
        _exit_now()
    if "error" in result:
        raise result["error"]
    return result["report"]


def _exit_now() -> None:
    """Leave the process at once (exit code 0), with the log flushed: a thread hangs in a request."""
    logging.shutdown()
    os._exit(0)
