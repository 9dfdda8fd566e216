"""bot/runtime.py: `open_runtime`, the composition root, and `Runtime.close()`.

What an open Runtime holds: the policies built once, bound to the scorer's model version and shared with
the Actor; the Actor's mode; the journal at the config's path under the writer lock; the broker's and
Fritz's clients; the services of the action kinds by name. `configured_policies`. The start checks: each
one failing names what is wrong, before any poll, and leaves nothing open (no file of the journal held,
the writer lock released: the next open_runtime on the same journal starts). `close()` releases all, twice
is harmless. Real clients against the local Kowalski and SkyPortal stand-ins; the session's one model
(`onnx_scorer`), never loaded here.
"""

import json
import os
import socket
import threading
import time
from datetime import UTC, datetime

import pytest

from bot.artifacts import ArtifactError, get_artifact
from bot.boom.client import BoomError
from bot.config import ConfigError, load_config
from bot.kowalski.client import KowalskiClient, KowalskiError
from bot.lock import JournalLocked, WriterLock, lock_path
from bot.runtime import (
    configured_policies,
    interruptible_sleep,
    open_runtime,
    start_banner,
)
from bot.scoring.scorer import Scorer
from bot.skyportal.client import SkyPortalClient
from bot.skyportal.errors import SkyPortalError
from bot.webhook import Webhook

NO_TOKEN = "00000000-0000-0000-0000-000000000000"  # a well-formed token the stand-in does not know


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def journal_files_open(journal_path) -> list[str]:
    """The files of a journal (itself, -wal, -shm, .lock) this process holds open."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, already closed
            continue
        if target.startswith(str(journal_path)):
            held.append(target)
    return held


def queries(kowalski) -> int:
    return kowalski.request_counts.get("POST /api/queries", 0)


@pytest.fixture
def opened():
    """open(cfg, **kw): open_runtime, closed at the end of the test."""
    runtimes = []

    def open_(cfg, **kw):
        rt = open_runtime(cfg, **kw)
        runtimes.append(rt)
        return rt

    yield open_
    for rt in runtimes:
        rt.close()


def test_an_open_runtime_holds_what_the_cycle_and_the_actor_share(example_kowalski, skyportal, write_config,
                                                                  onnx_scorer, opened, tmp_path):
    scorer = Scorer(onnx_scorer.model, onnx_scorer.braai, model_version="v-test")  # not the manifest's version
    cfg = load_config(write_config(example_kowalski, skyportal))  # live
    stop, now = threading.Event(), (lambda: datetime(2023, 10, 5, 12, tzinfo=UTC))

    def now_jd():
        return 2460223.0

    rt = opened(cfg, scorer=scorer, stop=stop, now=now, now_jd=now_jd)

    assert [p.name for p in rt.policies] == [p.name for p in cfg.policies] == ["bts_p1", "bts_p2"]
    assert {p.model_version for p in rt.policies} == {"v-test"}  # bound to the injected scorer's model
    assert [p.actions for p in rt.policies] == [p.actions for p in cfg.policies]
    assert all(rt.actor.policies[p.name] is p for p in rt.policies)  # one set of objects: cycle and Actor
    assert rt.actor.mode == "live" and rt.scorer is scorer and rt.config is cfg
    assert rt.actor.ctx.now is now and rt.poller.now_jd is now_jd and rt.stop is stop

    assert cfg.journal_path == tmp_path / "journal.sqlite" and rt.journal.path == str(cfg.journal_path)
    holder = json.loads(lock_path(cfg.journal_path).read_text())
    assert holder["pid"] == os.getpid()  # the writer lock is this runtime's
    assert isinstance(rt.kowalski, KowalskiClient) and rt.poller.client is rt.kowalski
    assert isinstance(rt.skyportal, SkyPortalClient)
    assert rt.actor.ctx.services == {"skyportal": rt.skyportal}
    # the kinds' checks were asked of Fritz at start: save's group, followup's allocations; nothing written
    paths = [(r["method"], r["path"]) for r in skyportal.requests]
    assert ("GET", "/api/internal/profile") in paths and ("GET", "/api/groups/1001") in paths
    assert ("GET", "/api/allocation") in paths and skyportal.writes() == []


def test_close_releases_everything_and_twice_is_harmless(example_kowalski, skyportal, write_config, onnx_scorer):
    cfg = load_config(write_config(example_kowalski, skyportal, mode="dry-run"))
    rt = open_runtime(cfg, scorer=onnx_scorer)
    try:
        with pytest.raises(JournalLocked, match="in use by another btsbot writer"):
            open_runtime(cfg, scorer=onnx_scorer)  # one writer per journal
        with pytest.raises(JournalLocked):  # the refused second open did not release the first one's lock
            WriterLock(cfg.journal_path).acquire()
        assert journal_files_open(cfg.journal_path)
    finally:
        rt.close()
    assert journal_files_open(cfg.journal_path) == [] and rt.closers == []
    assert lock_path(cfg.journal_path).read_text() == ""  # a clean stop: nothing to take over
    rt.close()  # again: nothing left to close, no error
    open_runtime(cfg, scorer=onnx_scorer).close()  # the next writer starts


def test_dry_run_without_a_token_never_asks_fritz(example_kowalski, skyportal, write_config, onnx_scorer, opened,
                                                  monkeypatch):
    monkeypatch.delenv("FRITZ_TOKEN", raising=False)
    rt = opened(load_config(write_config(example_kowalski, skyportal, mode="dry-run", skyportal={"token": None})),
                scorer=onnx_scorer)
    assert rt.skyportal is None and rt.actor.mode == "dry-run" and rt.actor.ctx.services == {}
    assert skyportal.requests == []


def test_the_kinds_bring_their_services_by_name(example_kowalski, skyportal, write_config, onnx_scorer, opened,
                                                monkeypatch):
    notify = [{"name": "bts_p1", "actions": {"save": {"group_ids": [1001]},
                                             "notify": {"webhook_env": "BTSBOT_TEST_WEBHOOK"}}}]
    monkeypatch.delenv("BTSBOT_TEST_WEBHOOK", raising=False)
    rt = opened(load_config(write_config(example_kowalski, skyportal, name="unset.yaml", mode="dry-run",
                                         policies=notify, state={"path": "unset.sqlite"})), scorer=onnx_scorer)
    assert set(rt.actor.ctx.services) == {"skyportal"}  # dry-run: an unset webhook is only logged
    monkeypatch.setenv("BTSBOT_TEST_WEBHOOK", f"http://127.0.0.1:{free_port()}/hook")  # never called at start
    rt = opened(load_config(write_config(example_kowalski, skyportal, policies=notify)), scorer=onnx_scorer)
    services = rt.actor.ctx.services
    assert set(services) == {"skyportal", "webhook:BTSBOT_TEST_WEBHOOK"}
    assert isinstance(services["webhook:BTSBOT_TEST_WEBHOOK"], Webhook)
    assert services["webhook:BTSBOT_TEST_WEBHOOK"].close in rt.closers


def test_configured_policies_bind_a_model_version_once():
    cfg = load_config(env={})  # the default policies, bts_p1 and bts_p2
    manifest = get_artifact("models", "btsbot").version
    assert {p.model_version for p in configured_policies(cfg)} == {manifest}  # without loading the model
    pinned = load_config(overrides={"policies": [{"name": "a"}, {"name": "b", "model_version": "v2"}]}, env={})
    assert [p.model_version for p in configured_policies(pinned, ["v1", "v2"])] == ["v1", "v2"]  # default: 1st
    with pytest.raises(ConfigError, match=r"policies\.1\.model_version: 'v2' \(b\) is not a loaded model's"):
        configured_policies(pinned, ["v1"])
    built = configured_policies(cfg, ["vX"])
    assert [p.actions for p in built] == [p.actions for p in cfg.policies]


def test_a_policy_pinned_to_another_model_fails_before_the_journal_is_touched(example_kowalski, skyportal,
                                                                              write_config, onnx_scorer):
    cfg = load_config(write_config(example_kowalski, skyportal,
                                   policies=[{"name": "old", "model_version": "v0.9"}]))
    with pytest.raises(ConfigError, match=r"policies\.0\.model_version: 'v0\.9' \(old\)"):
        open_runtime(cfg, scorer=onnx_scorer)
    assert not cfg.journal_path.exists() and not lock_path(cfg.journal_path).exists()
    assert example_kowalski.request_counts == {} and skyportal.requests == []  # nothing contacted either


def fails_cleanly(cfg, scorer, error, words, kowalski, skyportal, write_config, onnx_scorer) -> str:
    """open_runtime(cfg) raises `error` naming `words`, without a secret, having polled nothing and leaving no
    file of the journal open; then a good config on the same journal opens (the lock was released)."""
    kowalski.reset_counts()
    with pytest.raises(error) as failed:
        open_runtime(cfg, scorer=scorer)
    message = str(failed.value)
    assert all(w in message for w in words), message
    assert skyportal.token not in message and kowalski.token not in message
    assert journal_files_open(cfg.journal_path) == [] and lock_path(cfg.journal_path).read_text() == ""
    polled_by_the_failure = queries(kowalski)
    good = load_config(write_config(kowalski, skyportal, name="good.yaml"))
    assert good.journal_path == cfg.journal_path
    kowalski.reset_counts()
    rt = open_runtime(good, scorer=onnx_scorer)
    try:
        assert polled_by_the_failure <= queries(kowalski) == 1  # at most the catalog check: no poll
        assert rt.journal.history() == [] and skyportal.writes() == []
    finally:
        rt.close()
    return message


NOTIFY_LIVE = [{"name": "p", "actions": {"save": {"group_ids": [1001]},
                                         "notify": {"webhook_env": "BTSBOT_UNSET_WEBHOOK"}}}]


@pytest.mark.parametrize("overrides, words", [
    ({"skyportal": {"token": NO_TOKEN}}, ["FRITZ_TOKEN / skyportal.token", "refused the token"]),
    ({"policies": [{"name": "p", "actions": {"save": {"group_ids": [4242]}}}]},
     ["group 4242: no such group (or not visible to the bot's user)"]),
    ({"mode": "dry-run", "policies": [{"name": "p", "actions": {"save": {"group_ids": [1003]}}}]},
     ["group 1003: the bot's user is not a member"]),  # dry-run with a token checks too
    ({"policies": [{"name": "p", "actions": {"followup": {
        "allocation_id": 2999, "payload": {"priority": 3, "observation_type": "IFU"}}}}]},
     ["allocation 2999: not found among the allocations visible to the bot's user"]),
    ({"kowalski": {"token": "not-a-valid-token"}}, ["KOWALSKI_TOKEN / kowalski.token", "refused"]),
    ({"policies": NOTIFY_LIVE}, ["policies.0.actions.notify.webhook_env", "BTSBOT_UNSET_WEBHOOK", "is not set"]),
], ids=["bad-fritz-token", "unknown-save-group", "save-group-not-member-dry-run", "unknown-allocation",
        "bad-kowalski-token", "live-webhook-unset"])
def test_a_failed_start_check_names_it_polls_nothing_and_leaves_nothing_open(
        example_kowalski, skyportal, write_config, onnx_scorer, monkeypatch, overrides, words):
    monkeypatch.delenv("BTSBOT_UNSET_WEBHOOK", raising=False)  # live-webhook-unset: fails after Fritz's check
    cfg = load_config(write_config(example_kowalski, skyportal, name="bad.yaml", **overrides))
    fails_cleanly(cfg, onnx_scorer, ConfigError, words, example_kowalski, skyportal, write_config, onnx_scorer)


def test_a_model_that_cannot_load_fails_last_and_closes_the_rest(example_kowalski, skyportal, write_config,
                                                                 onnx_scorer, tmp_path):
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    cfg = load_config(write_config(example_kowalski, skyportal, name="bad.yaml",
                                   models={"cache_dir": str(empty), "backend": "onnx"}))
    fails_cleanly(cfg, None, ArtifactError, ["btsbot models pull"], example_kowalski, skyportal, write_config,
                  onnx_scorer)  # no scorer given: the runtime loads the model, after every other check
    assert ("GET", "/api/allocation") in [(r["method"], r["path"]) for r in skyportal.requests]


@pytest.mark.parametrize("service", ["kowalski", "boom", "fritz"])
def test_an_unreachable_service_fails_at_start_naming_its_keys(example_kowalski, skyportal, write_config,
                                                               onnx_scorer, service):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    overrides, error, words = {
        "kowalski": ({"kowalski": {"port": port, "retries": 0}}, KowalskiError,
                     [f"cannot reach Kowalski at {url}", "(kowalski."]),
        "boom": ({"source": "boom", "boom": {"url": url, "username": "bot", "password": "b00m-secret",
                                             "retries": 0, "backoff_s": 0.05}}, BoomError,
                 [f"cannot reach BOOM at {url} (boom.url)"]),
        "fritz": ({"skyportal": {"url": url}}, SkyPortalError, [f"cannot reach Fritz at {url} (skyportal.url)"]),
    }[service]
    cfg = load_config(write_config(example_kowalski, skyportal, name="bad.yaml", **overrides))
    t0 = time.monotonic()
    message = fails_cleanly(cfg, onnx_scorer, error, words, example_kowalski, skyportal, write_config, onnx_scorer)
    assert time.monotonic() - t0 < 6, message  # said at start, in seconds


def test_the_banner_says_what_the_mode_does_with_the_journal():
    none = {"decisions": {}, "dry_run_only_sources": 0}
    dry = {"decisions": {"dry-run": 3, "live": 1}, "dry_run_only_sources": 2}
    assert start_banner("live", none) == "mode live: acting on Fritz"
    assert start_banner("dry-run", none).startswith("mode dry-run: journaling every action it would take")
    assert start_banner("dry-run", dry).endswith("; the journal holds 3 dry-run decision(s) from earlier runs")
    live = start_banner("live", dry)
    assert "3 dry-run decision(s) on 2 source(s): none counts as done" in live and "--promote-dry-run" in live


def test_a_stop_wakes_the_back_offs_not_the_rate_limit_waits():
    assert interruptible_sleep(None) is time.sleep
    stop = threading.Event()
    stop.set()
    sleep = interruptible_sleep(stop)
    t0 = time.monotonic()
    sleep(30.0)  # a back-off: woken by the stop at once
    woke = time.monotonic() - t0
    t0 = time.monotonic()
    sleep(0.2)  # a rate-limit wait (<= 1 s): slept in full even when stopping
    assert woke < 1.0 and time.monotonic() - t0 >= 0.2
