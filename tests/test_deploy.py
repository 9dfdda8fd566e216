"""deploy/: the systemd unit, supervisord.conf, install.sh and the env example agree with the product (exit
codes, secret names, config) and with each other (paths); systemd-analyze and shellcheck where present."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.cli.common import EXIT_FAILED, EXIT_LOCKED, EXIT_MODEL, EXIT_OK, EXIT_USAGE
from bot.config import load_config
from bot.daemon import GRACE_S

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "btsbot.service"
INSTALL = DEPLOY / "install.sh"
NO_RESTART = {EXIT_USAGE, EXIT_MODEL, EXIT_LOCKED}  # restarting does not help: config, models, journal lock
NAME = r"[A-Z][A-Z0-9_]*"


def unit(section: str = "Service") -> dict[str, list[str]]:
    """The unit's `Key=value` lines of one section (a key may repeat, as Environment= does)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section:
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def supervisord() -> configparser.SectionProxy:
    cp = configparser.RawConfigParser()
    cp.read_string((DEPLOY / "supervisord.conf").read_text())
    return cp["program:btsbot"]


def supervisord_env() -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', supervisord()["environment"]))


def supervisord_argv() -> list[str]:
    """btsbot's own command line inside supervisord's `/bin/sh -c '...; exec setpriv ... btsbot run ...'`."""
    sh = shlex.split(supervisord()["command"])
    assert sh[:2] == ["/bin/sh", "-c"], sh
    words = shlex.split(sh[2])
    start = next(i for i, w in enumerate(words) if w.endswith("/bin/btsbot"))
    return words[start:]


def install_vars() -> dict[str, str]:
    """install.sh's top-level NAME=value settings, $NAME references expanded."""
    values: dict[str, str] = {}
    for name, value in re.findall(r"^(\w+)=(\S+)", INSTALL.read_text(), re.MULTILINE):
        values[name] = re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), value)
    return values


def env_example_names() -> dict[str, str]:
    """The names the env example sets or shows commented out, with their values (the active lines')."""
    text = (DEPLOY / "btsbot.env.example").read_text()
    return {n: v for n, v in re.findall(rf"^#?\s*({NAME})=(.*)$", text, re.MULTILINE)}


def secret_names() -> set[str]:
    """Every secret variable the product names: the defaults' `key: null  # or NAME` and `*_env` examples,
    and what the config loader reads from the environment."""
    defaults = (REPO / "config" / "config.defaults.yaml").read_text()
    named = set(re.findall(rf"^\s*\w+:\s*null\s*#\s*or\s+({NAME})", defaults, re.MULTILINE))
    named |= set(re.findall(rf"\w+_env:\s*(?:null\s*#\s*e\.g\.\s*)?({NAME})", defaults))
    loader = set(re.findall(rf'env(?:\.get\(|\[)"({NAME})"', (REPO / "bot" / "config.py").read_text()))
    assert named and loader, "the patterns found no secret in config.defaults.yaml or bot/config.py"
    return named | loader


def test_systemd_restarts_only_what_a_restart_can_fix():
    s = unit()
    assert {int(c) for c in s["RestartPreventExitStatus"][0].split()} == NO_RESTART
    assert s["Restart"] == ["on-failure"] and EXIT_FAILED not in NO_RESTART  # a failed start (1) is retried
    assert float(s["TimeoutStopSec"][0]) > GRACE_S + 2  # SIGTERM: btsbot winds down within its grace
    assert s["KillSignal"] == ["SIGTERM"]


def test_supervisord_exitcodes_are_the_ones_not_restarted():
    p = supervisord()
    assert {int(c) for c in p["exitcodes"].split(",")} == {EXIT_OK} | NO_RESTART
    assert p["autorestart"] == "unexpected"
    assert p["startsecs"] == "0"  # else an exit within startsecs is retried whatever its code
    assert p["stopsignal"] == "TERM" and float(p["stopwaitsecs"]) > GRACE_S + 2


def test_env_example_names_every_secret_and_holds_none():
    names = env_example_names()
    missing = secret_names() - names.keys()
    assert not missing, f"deploy/btsbot.env.example does not mention {sorted(missing)}"
    active = re.findall(rf"^({NAME})=(.*)$", (DEPLOY / "btsbot.env.example").read_text(), re.MULTILINE)
    assert active and all(value == "" for _, value in active), active  # empty until the operator fills them


def test_no_secret_inline_in_unit_or_supervisord():
    secrets = secret_names()
    for path in (UNIT, DEPLOY / "supervisord.conf"):
        code = "\n".join(l for l in path.read_text().splitlines() if not l.lstrip().startswith(("#", ";")))
        inline = [n for n in secrets if re.search(rf"\b{n}\s*=", code)]
        assert not inline, f"{path.name} sets {inline} inline"
    assert unit()["EnvironmentFile"] == ["/etc/btsbot/btsbot.env"]
    assert ". /etc/btsbot/btsbot.env" in supervisord()["command"]  # sourced by the command, as root
    assert set(supervisord_env()) <= {"BTSBOT_CACHE_DIR", "HOME", "USER"}


def test_unit_supervisord_and_install_sh_agree_on_the_paths():
    v = install_vars()
    btsbot = f"{v['PREFIX']}/bin/btsbot"
    config = f"{v['ETC']}/btsbot.yaml"
    s = unit()
    exec_start = shlex.split(s["ExecStart"][0])
    sup = supervisord_argv()
    assert exec_start[0] == sup[0] == btsbot
    assert exec_start[1:4] == sup[1:4] == ["run", "--config", config]
    env = dict(e.split("=", 1) for e in s["Environment"])
    assert env["BTSBOT_CACHE_DIR"] == supervisord_env()["BTSBOT_CACHE_DIR"] == v["CACHE"]
    assert s["WorkingDirectory"] == [v["STATE"]] == [supervisord()["directory"]]
    assert v["STATE"] in s["ReadWritePaths"][0].split()
    assert s["User"] == ["btsbot"] and "--reuid=btsbot" in supervisord()["command"]
    assert supervisord()["stdout_logfile"].startswith(v["LOG"] + "/")


def test_install_sh_never_overwrites_the_operators_files():
    text = INSTALL.read_text()
    for name in ("btsbot.yaml", "btsbot.env"):
        writes = [l for l in text.splitlines() if re.search(rf'\b(install|cp|mv)\b.*"\$ETC/{name}"$', l)]
        assert writes and all(l.startswith(f'[ -e "$ETC/{name}" ] || install ') for l in writes), writes
    # the models are pulled as the daemon's user, into the daemon's cache, with the daemon's config
    assert re.search(r'runuser -u btsbot -- env .*BTSBOT_CACHE_DIR="\$CACHE"', text)
    assert '"$PREFIX/bin/btsbot" models pull --config "$ETC/btsbot.yaml"' in text


def test_deploy_config_loads_with_the_products_loader():
    cfg = load_config(DEPLOY / "btsbot.yaml", env={})
    assert cfg.mode == "dry-run"
    assert cfg.journal_path.is_absolute() and str(cfg.journal_path).startswith(install_vars()["STATE"] + "/")
    assert cfg.models.cache_dir is None  # models.cache_dir would win over the unit's BTSBOT_CACHE_DIR


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
@pytest.mark.parametrize("extra, clean", [("", True), ("NoSuchKey=1\n", False)])
def test_systemd_analyze_verify(tmp_path, extra, clean):
    """systemd 252 prints nothing at all for this unit once ExecStart names an existing program (the
    install path does not exist here); the second case shows that a bad line is reported."""
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", UNIT.read_text(), flags=re.MULTILINE)
    copy = tmp_path / "btsbot.service"
    copy.write_text(text.replace("[Install]", extra + "[Install]"))
    res = subprocess.run(["systemd-analyze", "verify", str(copy)], check=False, capture_output=True, text=True, timeout=120)
    about_unit = [l for l in (res.stdout + res.stderr).splitlines() if "btsbot.service" in l]
    assert res.returncode == 0, res.stdout + res.stderr
    assert (about_unit == []) is clean, about_unit


def test_install_sh_syntax():
    subprocess.run(["sh", "-n", str(INSTALL)], check=True)


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="no shellcheck")
def test_install_sh_shellcheck():
    res = subprocess.run(["shellcheck", str(INSTALL)], check=False, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
