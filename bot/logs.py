"""Logging for the command line: what an operator sees at each verbosity.

- default: warnings and errors, plus one summary line per cycle (logger `bot.cycle.summary`, INFO);
  retry chatter of the transports and APScheduler's per-job lines are hidden, failures are one line;
- `-v`: INFO everywhere (each poll, each action, APScheduler's job lines, the retries) and tracebacks;
- `-vv`: DEBUG (every HTTP exchange).
`--log-format json` writes one JSON object per line; `--log-file FILE` appends to FILE instead of stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

SUMMARY_LOGGER = "bot.cycle.summary"
BANNER_LOGGER = "bot.runtime.banner"  # the start banner (mode, dry-run history), shown by default
# loggers whose warnings are retries a later line sums up ("cycle failed: ...", an action left pending)
RETRY_LOGGERS = ("bot.kowalski.client", "bot.boom.client", "bot.skyportal.transport", "bot.retry",
                 "urllib3")  # urllib3: its own "Retrying (...)" lines under penquins; btsbot says what failed
_state: dict = {"verbose": 0, "handler": None}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out)


class _Stderr(logging.StreamHandler):
    """A handler on whatever `sys.stderr` is at each record (pytest swaps it between tests)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(verbose: int = 0, fmt: str = "text", file: str | None = None) -> None:
    """Configure the root logger once for the command line (replacing earlier handlers)."""
    _state["verbose"] = verbose
    handler = logging.FileHandler(file, encoding="utf-8") if file else _Stderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if _state["handler"] is not None:  # only our own earlier handler (a test harness may have its own)
        root.removeHandler(_state["handler"])
        _state["handler"].close()
    else:
        for old in list(root.handlers):
            if type(old) is logging.StreamHandler or isinstance(old, logging.FileHandler):  # basicConfig's
                root.removeHandler(old)
    _state["handler"] = handler
    root.addHandler(handler)
    root.setLevel(logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG)
    quiet = verbose <= 0
    for name in (SUMMARY_LOGGER, BANNER_LOGGER):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.ERROR if quiet else logging.NOTSET)
    for name in RETRY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR if quiet else logging.NOTSET)


def verbose() -> bool:
    """Whether `-v` was given (tracebacks and retry details are shown)."""
    return _state["verbose"] > 0
