"""Building the bot's adapters from the configuration, at the edge (never at import time).

`open_runtime(cfg)` builds the policies once (bound to the loaded model's version), connects to Kowalski
(ping + catalog check), checks the SkyPortal token, groups and allocations (live mode; dry-run checks
them too when a token is given), loads the model and opens the journal. Every check fails here, at
start, before any poll. The same policy objects (`Runtime.policies`) serve the cycle and the Actor.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Sequence

from bot.actions import Actor
from bot.actions.registry import KINDS
from bot.config import Config, ConfigError, secret
from bot.actions.policy import ActingPolicy, acting_policies
from bot.journal import Journal
from bot.kowalski.client import KowalskiClient, KowalskiError
from bot.lock import acquire_writer_lock
from bot.kowalski.poller import Poller
from bot.scoring.scorer import Scorer, build_scorer
from bot.skyportal.client import SkyPortalClient
from bot.skyportal.errors import SkyPortalError

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    journal: Journal
    poller: Poller
    scorer: Scorer
    actor: Actor
    kowalski: object  # the broker's client: KowalskiClient, or BoomClient with source: boom
    skyportal: SkyPortalClient | None
    policies: list[ActingPolicy] = field(default_factory=list)  # built once; the cycle and the Actor share them
    closers: list = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)  # set by SIGTERM/SIGINT (the daemon)

    def close(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # pragma: no cover - best effort on shutdown
                log.exception("while closing")
        self.closers.clear()


def configured_policies(cfg: Config, model_versions: Sequence[str] | None = None) -> list[ActingPolicy]:
    """The config's policies with their actions, bound to a model version, built once.

    `model_versions`: the versions of the loaded models (default: the production model's, from
    production_models/manifest.json, without loading it -- what `backtest` uses). A policy naming a
    version no loaded model provides fails here with a ConfigError naming `policies.N.model_version`.
    """
    if model_versions is None:
        from bot.artifacts import get_artifact

        model_versions = [get_artifact("models", "btsbot").version]
    try:
        return acting_policies(cfg.policies, list(model_versions))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


KOWALSKI_CREDENTIALS = "KOWALSKI_TOKEN / kowalski.token (or KOWALSKI_USERNAME and KOWALSKI_PASSWORD)"
FRITZ_CREDENTIALS = "FRITZ_TOKEN / skyportal.token"


def interruptible_sleep(stop: threading.Event | None) -> Callable[[float], None]:
    """A `sleep` for the transports: back-offs (> 1 s) wake when `stop` is set; rate-limit waits do not."""
    if stop is None:
        return time.sleep

    def sleep(seconds: float) -> None:
        if seconds <= 1.0:
            time.sleep(seconds)
        else:
            stop.wait(seconds)

    return sleep


def kowalski_client(cfg: Config, sleep: Callable[[float], None] = time.sleep) -> KowalskiClient:
    k = cfg.kowalski
    try:
        return KowalskiClient(protocol=k.protocol, host=k.host, port=k.port, token=secret(k.token),
                              username=k.username, password=secret(k.password), timeout_s=k.timeout_s,
                              max_time_ms=k.max_time_ms, retries=k.retries, backoff_s=k.backoff_s, sleep=sleep)
    except KowalskiError as exc:  # the only one raised before connecting: no credentials
        raise ConfigError(f"{KOWALSKI_CREDENTIALS}: {exc}") from None


def connect_kowalski(client: KowalskiClient) -> KowalskiClient:
    """connect(), with start-up errors naming the keys: a refused token is a config error (rc 2)."""
    try:
        return client.connect()
    except KowalskiError as exc:
        text = str(exc)
        if "refused the" in text:
            raise ConfigError(f"{KOWALSKI_CREDENTIALS}: {text}") from None
        hint = "" if "(kowalski." in text else " (kowalski.protocol/host/port)"  # one hint, not two
        raise KowalskiError(f"{text}{hint}", transient=exc.transient) from None


def skyportal_client(cfg: Config, policies: Sequence[ActingPolicy],
                     sleep: Callable[[float], None] = time.sleep) -> SkyPortalClient | None:
    s = cfg.skyportal
    token = secret(s.token)
    if token is None:
        if cfg.mode == "live":
            raise ConfigError(f"{FRITZ_CREDENTIALS}: live mode needs a Fritz (SkyPortal) token")
        return None
    try:
        client = SkyPortalClient(s.url, token, timeout_s=s.timeout_s, rate_limit_per_s=s.rate_limit_per_s,
                                 max_retries=s.max_retries, backoff_s=s.backoff_s,
                                 followup_timeout_s=s.followup_timeout_s, sleep=sleep)
    except ValueError as exc:
        key = "skyportal.url" if "url" in str(exc) else FRITZ_CREDENTIALS
        raise ConfigError(f"{key}: {exc}") from None
    needs: dict[str, list] = {}
    for kind in KINDS.values():  # what each kind needs of Fritz: its groups, its allocations
        for key, values in kind.checks(policies).items():
            needs[key] = sorted(set(needs.get(key, [])) | set(values))
    try:
        client.check(needs.get("groups", []), needs.get("allocations", []))
    except ValueError as exc:
        client.close()
        raise ConfigError(f"skyportal ({s.url}): {exc}") from None
    except SkyPortalError as exc:
        client.close()
        if exc.status == 401:
            raise ConfigError(f"{FRITZ_CREDENTIALS}: Fritz at {s.url} refused the token: {exc.message}") from None
        what = "cannot reach" if exc.status is None else f"unexpected answer (HTTP {exc.status}) from"
        raise SkyPortalError(exc.status, f"{what} Fritz at {s.url} (skyportal.url): {exc.message}", exc.method,
                             exc.path, transient=exc.transient, headline=True) from None
    return client


BOOM_CREDENTIALS = "BOOM_USERNAME and BOOM_PASSWORD / boom.username and boom.password"


def boom_client(cfg: Config, sleep: Callable[[float], None] = time.sleep):
    """The connected BOOM client of `source: boom`; start-up errors name the keys."""
    from bot.boom.client import BoomClient, BoomError

    b = cfg.boom
    if not b.url:
        raise ConfigError("boom.url: source: boom needs the URL of BOOM's API")
    try:
        client = BoomClient(b.url, b.username, secret(b.password), timeout_s=b.timeout_s, max_time_ms=b.max_time_ms,
                            retries=b.retries, backoff_s=b.backoff_s, max_requests_per_s=b.max_requests_per_s,
                            max_threads=b.max_concurrent, sleep=sleep)
    except BoomError as exc:
        raise ConfigError(f"{BOOM_CREDENTIALS}: {exc}") from None
    try:
        return client.connect()
    except BoomError as exc:
        client.close()
        if exc.status == 401:
            raise ConfigError(f"{BOOM_CREDENTIALS}: {exc}") from None
        raise


def broker_client(cfg: Config, sleep: Callable[[float], None] = time.sleep, source: str | None = None):
    """The connected client of the alert broker `source` (default: the config's `source:`)."""
    if (source or cfg.source) == "boom":
        return boom_client(cfg, sleep)
    return connect_kowalski(kowalski_client(cfg, sleep))


def broker_poller(cfg: Config, client, state, now_jd: Callable[[], float] | None = None,
                  source: str | None = None, **overrides) -> Poller:
    """The poller of the alert broker `source` (default: the config's), built from that broker's section;
    `state` holds the cursor and the known candids (the journal, or a MemoryPollState for a backtest);
    `overrides`: poller arguments to set otherwise (a backtest polls its window in one chunk_alerts=None)."""
    if (source or cfg.source) == "boom":
        from bot.boom.poller import BoomPoller

        section, cls = cfg.boom, BoomPoller
    else:
        section, cls = cfg.kowalski, Poller
    kwargs = dict(prefilter=section.prefilter, page_size=section.page_size, overlap_days=section.overlap_days,
                  cutout_batch=section.cutout_batch, history_batch=section.history_batch,
                  mag_max=cfg.faintest_alert_mag, programids=section.programids,
                  chunk_alerts=section.chunk_alerts, now_jd=now_jd)
    return cls(client, state, **{**kwargs, **overrides})


def alert_source(cfg: Config, journal: Journal, sleep: Callable[[float], None],
                 now_jd: Callable[[], float] | None):
    """The configured broker's connected client and its poller (`source: kowalski` or `boom`)."""
    client = broker_client(cfg, sleep)
    return client, broker_poller(cfg, client, journal, now_jd)


def open_journal(cfg: Config) -> Journal:
    try:
        return Journal(cfg.journal_path, mode=cfg.mode)
    except (sqlite3.Error, OSError) as exc:
        raise ConfigError(f"state.path: cannot open the journal {cfg.journal_path}: {exc}") from None


def lock_journal(cfg: Config):
    """The writer lock of the config's journal (one bot per journal); JournalLocked if another holds it."""
    try:
        return acquire_writer_lock(cfg.journal_path)
    except OSError as exc:
        raise ConfigError(f"state.path: cannot create the lock file beside {cfg.journal_path}: "
                          f"{exc.strerror or exc}") from None


def kind_services(cfg: Config, policies: Sequence[ActingPolicy], env=None) -> dict:
    """The services the action kinds bring themselves (`ActionKind.open_services`: e.g. notify's webhooks)."""
    env = os.environ if env is None else env
    out: dict = {}
    for kind in KINDS.values():
        out.update(kind.open_services(cfg, policies, env))
    return out


def open_runtime(cfg: Config, *, scorer=None, now_jd: Callable[[], float] | None = None,
                 now: Callable[[], datetime] | None = None, stop: threading.Event | None = None) -> Runtime:
    """Lock the journal, connect and check everything the cycle needs; `scorer` may be injected (tests
    share one model). `stop` (default: a new Event) interrupts the transports' back-off sleeps."""
    policies = configured_policies(cfg, [scorer.model_version] if scorer is not None else None)
    stop = stop if stop is not None else threading.Event()
    sleep = interruptible_sleep(stop)
    closers = []
    try:
        lock = lock_journal(cfg)
        if lock is not None:
            closers.append(lock.release)
        journal = open_journal(cfg)
        closers.append(journal.close)
        broker, poller = alert_source(cfg, journal, sleep, now_jd)
        closers.append(broker.close)
        skyportal = skyportal_client(cfg, policies, sleep)
        if skyportal is not None:
            closers.append(skyportal.close)
        hooks = kind_services(cfg, policies)
        closers.extend(h.close for h in hooks.values() if hasattr(h, "close"))
        scorer = scorer or build_scorer(cfg)  # the manifest's model: the version the policies were bound to
        actor = Actor(journal, policies, {"skyportal": skyportal, **hooks}, mode=cfg.mode,
                      links={"skyportal": cfg.skyportal.url}, max_sources_per_run=cfg.limits.max_sources_per_cycle,
                      **({"now": now} if now else {}))
        banner = start_banner(cfg.mode, journal.mode_summary())
    except Exception:
        for close in reversed(closers):
            close()
        raise
    models = (f"; models: {scorer.backend} ({scorer.backend_reason})" if getattr(scorer, "backend", None) else "")
    logging.getLogger("bot.runtime.banner").info(banner + models)
    return Runtime(cfg, journal, poller, scorer, actor, broker, skyportal, policies, closers, stop)


def start_banner(mode: str, summary: dict) -> str:
    """Which mode runs and, on a journal with dry-run history, what live does with it."""
    line = ("mode live: acting on Fritz" if mode == "live" else
            "mode dry-run: journaling every action it would take, sending no write to Fritz")
    dry = summary["decisions"].get("dry-run", 0)
    if dry and mode == "live":
        line += (f"; the journal holds {dry} dry-run decision(s) on {summary['dry_run_only_sources']} source(s): "
                 "none counts as done -- live acts on each source at its next alert if its policy still holds "
                 "(`run --once --promote-dry-run` acts on the recent ones now)")
    elif dry:
        line += f"; the journal holds {dry} dry-run decision(s) from earlier runs"
    return line
