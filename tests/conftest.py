"""Shared fixtures. Reference data is read in place from ../shared (never copied, never downloaded);
the models are pulled from the ../shared mirror into one session cache and loaded once per backend."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # test helpers (avro_packets)


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"reference data missing: {path} (tests read ../shared from the repository root)")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return _require(SHARED)


@pytest.fixture(scope="session")
def alerts_dir(shared) -> Path:
    return _require(shared / "alerts" / "ztf")


@pytest.fixture(scope="session")
def real_alerts(alerts_dir) -> list[dict]:
    from bot.alert_files import iter_alert_files

    alerts = [a for f in iter_alert_files([alerts_dir]) for a in f.alerts]
    assert len(alerts) == 36
    return alerts


@pytest.fixture(scope="session")
def ztf_schema(shared):
    from avro_packets import ztf_schema

    return ztf_schema(_require(shared / "schemas" / "ztf"))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory, shared) -> Path:
    """Models + example data pulled from the ../shared mirror (no network) and converted to ONNX, once."""
    from bot.artifacts import load_manifest, pull
    from bot.scoring.convert import convert_to_onnx

    cache = tmp_path_factory.mktemp("btsbot-cache")
    arts = load_manifest("models") + load_manifest("example_data")
    pull(arts, cache, sources=[shared / "models", shared / "example_data"], allow_url=False)
    convert_to_onnx(cache)
    return cache


@pytest.fixture(scope="session")
def example(model_cache):
    """(rows, triplets) of the seed README's example, from the pulled example data."""
    from bot.artifacts import get_artifact, installed_path
    from bot.sim.example_night import read_example

    return read_example(installed_path(get_artifact("example_data", "usage_candidates"), model_cache),
                        installed_path(get_artifact("example_data", "usage_triplets"), model_cache))


@pytest.fixture(scope="session")
def example_packets(example):
    from bot.sim.example_night import example_packets

    return example_packets(*example)


_backends: dict = {}


@pytest.fixture(scope="session", params=["onnx", "tensorflow"])
def backend_models(request, model_cache):
    """(backend name, btsbot model, braai model), loaded once per backend for the whole session."""
    from bot.scoring.backends import load_backends

    if request.param not in _backends:
        _backends[request.param] = load_backends(request.param, model_cache)
    return (request.param, *_backends[request.param])


@pytest.fixture(scope="session")
def onnx_scorer(model_cache):
    from bot.scoring.backends import load_backends
    from bot.scoring.scorer import Scorer

    if "onnx" not in _backends:
        _backends["onnx"] = load_backends("onnx", model_cache)
    return Scorer(*_backends["onnx"])


# --- the local stand-ins, loaded with the README example's alerts as packets ---------------------------
EXAMPLE_SINCE, EXAMPLE_UNTIL = 2460200.0, 2460270.0  # covers every example alert
SN, CV = "ZTF23abhvlji", "ZTF23abdsfms"


@pytest.fixture
def example_kowalski(example_packets):
    from bot.sim.kowalski import KowalskiSim

    with KowalskiSim() as sim:  # entering starts it
        sim.load_alerts(example_packets)
        yield sim


@pytest.fixture
def journal(tmp_path):
    """An empty journal on tmp_path (a module with its own `journal` fixture uses that one)."""
    from bot.journal import Journal

    with Journal(tmp_path / "journal.sqlite") as j:
        yield j


@pytest.fixture
def skyportal():
    from bot.sim.skyportal import SkyPortalSim

    with SkyPortalSim() as sim:
        yield sim


@pytest.fixture
def write_config(tmp_path, model_cache):
    """write_config(kowalski_sim, skyportal_sim, **overrides) -> path of a config for the stand-ins."""
    import yaml

    def write(kowalski, skyportal, /, name="config.yaml", **overrides):
        cfg = {
            "mode": "live",
            "kowalski": {"protocol": "http", "host": "127.0.0.1", "port": kowalski.port, "token": kowalski.token,
                         "timeout_s": 5.0, "max_time_ms": 4000, "backoff_s": 0.05},
            "skyportal": {"url": skyportal.url, "token": skyportal.token, "rate_limit_per_s": 50.0,
                          "backoff_s": 0.05, "followup_timeout_s": 2.0},
            "state": {"path": "journal.sqlite"},
            "models": {"cache_dir": str(model_cache)},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key].update(value)
            else:
                cfg[key] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg))
        return path

    return write


@pytest.fixture
def example_runtimes(example_kowalski, skyportal, write_config):
    """example_runtimes(name, scorer, chunk=100000) -> a dry-run Runtime on the example night's stand-ins,
    with its own journal `name`.sqlite and `kowalski.chunk_alerts: chunk`; all closed at the end."""
    from bot.config import load_config
    from bot.runtime import open_runtime

    opened = []

    def make(name, scorer, chunk=100000):
        cfg = write_config(example_kowalski, skyportal, name=f"{name}.yaml", mode="dry-run",
                           kowalski={"chunk_alerts": chunk}, state={"path": f"{name}.sqlite"})
        rt = open_runtime(load_config(cfg), scorer=scorer)
        opened.append(rt)
        return rt

    yield make
    for rt in opened:
        rt.close()


@pytest.fixture(scope="session")
def demo_journal(tmp_path_factory, model_cache, onnx_scorer):
    """The journal of the demo night replayed until 2023-10-06 (SN 2023tyk saved and triggered, the CV not)."""
    from bot.demo import run_demo

    path = tmp_path_factory.mktemp("demo") / "journal.sqlite"
    run_demo(model_cache, step_hours=1.0, until="2023-10-06", journal=str(path), out=lambda line: None,
             scorer=onnx_scorer)
    return path
