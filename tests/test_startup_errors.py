"""An unreachable Kowalski or Fritz at start: one line naming the service and its keys once, said in
seconds (the configured retry back-off, not a shortened one), exit code 1, and no urllib3 `Retrying` lines.

The real CLI in its own process, as an operator starts it."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml
from conftest import EXAMPLE_SINCE, EXAMPLE_UNTIL

from bot.cli import EXIT_FAILED

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp_path, model_cache, kowalski: dict, fritz_url: str, **more) -> tuple[int, list[str], float]:
    config = tmp_path / "btsbot.yaml"
    config.write_text(yaml.safe_dump({
        **more, "mode": "dry-run", "kowalski": {"protocol": "http", "host": "127.0.0.1", **kowalski},
        "skyportal": {"url": fritz_url, "token": "fritz-t0ken"}, "state": {"path": str(tmp_path / "j.sqlite")},
        "models": {"cache_dir": str(model_cache), "backend": "onnx"}}))
    t0 = time.monotonic()
    env = {**os.environ, "BOOM_USERNAME": "bot", "BOOM_PASSWORD": "b00m-secret"}
    proc = subprocess.run([sys.executable, "-m", "bot", "run", "--once", "--config", str(config),
                           "--since", str(EXAMPLE_SINCE), "--until", str(EXAMPLE_UNTIL)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    return proc.returncode, [line for line in proc.stderr.splitlines() if line.strip()], time.monotonic() - t0


def test_an_unreachable_kowalski_is_one_line_with_one_hint_quickly(tmp_path, model_cache):
    port = free_port()
    rc, lines, seconds = start(tmp_path, model_cache, {"port": port, "token": "kowalski-t0ken"},
                               f"http://127.0.0.1:{free_port()}")
    assert rc == EXIT_FAILED
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"btsbot: cannot reach Kowalski at http://127.0.0.1:{port}")
    assert lines[0].count("(kowalski.") == 1 and "connection refused" in lines[0]
    assert "t0ken" not in lines[0]
    assert seconds < 6, seconds  # was 7.5 s: four attempts with 1, 2, 4 s back-off


def test_an_unreachable_fritz_is_one_line_naming_the_key_quickly(tmp_path, model_cache, example_kowalski):
    url = f"http://127.0.0.1:{free_port()}"
    rc, lines, seconds = start(tmp_path, model_cache, {"port": example_kowalski.port, "token": example_kowalski.token},
                               url)
    assert rc == EXIT_FAILED
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"btsbot: cannot reach Fritz at {url} (skyportal.url): connection refused")
    assert "/api/internal/profile" not in lines[0] and "t0ken" not in lines[0]
    assert seconds < 6, seconds  # was 15.6 s: five attempts


def test_an_unreachable_boom_is_one_line_naming_the_key_quickly(tmp_path, model_cache):
    url = f"http://127.0.0.1:{free_port()}"
    rc, lines, seconds = start(tmp_path, model_cache, {}, f"http://127.0.0.1:{free_port()}", source="boom",
                               boom={"url": url})
    assert rc == EXIT_FAILED
    assert lines == [f"btsbot: cannot reach BOOM at {url} (boom.url): connection refused"], lines
    assert seconds < 6, seconds  # was 7.5 s: four attempts
