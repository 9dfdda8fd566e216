"""The daemon: APScheduler runs `run_cycle` every `schedule.interval_minutes`; nothing else lives here.

One cycle at a time (max_instances=1, missed runs coalesced). A cycle that fails (Kowalski down, Fritz
errors, a bug on one bad alert) is logged and the next one runs on schedule: nothing was committed by
the failed one, so the next poll picks its alerts up again. SIGTERM/SIGINT stop it between cycles.
"""

from __future__ import annotations

import logging
import signal
import threading

from bot.config import Config
from bot.cycle import run_cycle
from bot.runtime import Runtime, open_runtime

log = logging.getLogger(__name__)


def safe_cycle(rt: Runtime) -> bool:
    """One cycle whose failure is logged, never raised: the daemon must outlive a bad cycle."""
    try:
        report = run_cycle(rt)
    except Exception:
        log.exception("cycle failed; nothing of it was committed, the next cycle retries")
        return False
    for line in report.lines():
        log.info(line)
    return True


def run_daemon(cfg: Config, rt: Runtime | None = None, stop: threading.Event | None = None) -> int:
    from apscheduler.schedulers.background import BackgroundScheduler

    rt = rt or open_runtime(cfg)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(safe_cycle, "interval", args=[rt], minutes=cfg.schedule.interval_minutes,
                      max_instances=1, coalesce=True, next_run_time=_now(), id="cycle")
    scheduler.start()
    log.warning("btsbot %s: polling every %g min (Ctrl-C or SIGTERM to stop)", cfg.mode, cfg.schedule.interval_minutes)
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        rt.close()
    return 0


def _now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)
