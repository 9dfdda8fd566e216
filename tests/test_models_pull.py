"""`btsbot models pull`: mirrors, checksums, truncated archives, and clear errors."""

import shutil

import pytest

from bot.artifacts import (
    ArtifactError,
    get_artifact,
    installed_path,
    load_manifest,
    pull,
)
from bot.cli import main


def test_manifests_pin_the_public_sources(shared):
    models = {a.name: a for a in load_manifest("models")}
    assert set(models) == {"btsbot", "braai"}
    assert "a70c0d8d7fed01cebc3fd8292cac807dc5b9e98a" in models["btsbot"].url
    assert models["btsbot"].url.endswith("production_models/v1.0.1.tar.gz")
    examples = load_manifest("example_data")
    assert all("395330492fd796f3a697ca40cc98012ba919ffa9" in a.url for a in examples)
    # the manifests agree with the checksums published beside the mirrors
    for art in models.values():
        assert f"{art.sha256}  {art.file}" in (shared / "models" / "SHA256SUMS").read_text()
        assert (shared / "models" / art.file).stat().st_size == art.size
    for art in examples:
        assert f"{art.sha256}  {art.file}" in (shared / "example_data" / "SHA256SUMS").read_text()


def test_cli_pull_from_env_mirror_then_status(capsys, tmp_path, shared, monkeypatch):
    monkeypatch.setenv("BTSBOT_MODEL_MIRROR", f"{tmp_path / 'nowhere'}:{shared / 'models'}:{shared / 'example_data'}")
    cache = tmp_path / "cache"
    assert main(["models", "pull", "--cache-dir", str(cache), "--offline"]) == 0
    out = capsys.readouterr().out
    assert "btsbot v1.0.1" in out and "converted to" in out
    assert (installed_path(get_artifact("models", "btsbot"), cache) / "saved_model.pb").is_file()
    assert main(["models", "status", "--cache-dir", str(cache)]) == 0
    assert main(["models", "pull", "--cache-dir", str(cache), "--offline"]) == 0  # idempotent
    assert "already installed" in capsys.readouterr().out


def _mirror_with(tmp_path, shared, name, mutate):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for f in (shared / "models").iterdir():
        shutil.copy(f, mirror / f.name)
    target = mirror / name
    target.chmod(0o644)
    target.write_bytes(mutate(target.read_bytes()))
    return mirror


def test_checksum_mismatch_names_the_file(capsys, tmp_path, shared):
    def flip(data):
        return data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]

    mirror = _mirror_with(tmp_path, shared, "braai_d6_m9.h5", flip)
    rc = main(["models", "pull", "--from", str(mirror), "--cache-dir", str(tmp_path / "c"), "--offline",
               "--no-example-data", "--no-convert"])
    err = capsys.readouterr().err
    assert rc == 3 and "braai_d6_m9.h5" in err and "sha256" in err
    with pytest.raises(ArtifactError, match="not installed"):
        installed_path(get_artifact("models", "braai"), tmp_path / "c")


def test_truncated_archive_is_refused(tmp_path, shared):
    mirror = _mirror_with(tmp_path, shared, "btsbot-v1.0.1.tar.gz", lambda d: d[: len(d) // 3])
    with pytest.raises(ArtifactError, match=r"btsbot-v1\.0\.1\.tar\.gz .*truncated"):
        pull([get_artifact("models", "btsbot")], tmp_path / "c", sources=[mirror], allow_url=False)


def test_nothing_anywhere_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("BTSBOT_MODEL_MIRROR", raising=False)
    with pytest.raises(ArtifactError, match="--from DIR"):
        pull([get_artifact("models", "btsbot")], tmp_path / "c", sources=[tmp_path], allow_url=False)


def test_damaged_cache_is_detected(tmp_path, shared):
    cache = tmp_path / "c"
    art = get_artifact("models", "btsbot")
    pull([art], cache, sources=[shared / "models"], allow_url=False)
    shutil.rmtree(installed_path(art, cache))
    with pytest.raises(ArtifactError, match="pull --force"):
        installed_path(art, cache)
    pull([art], cache, sources=[shared / "models"], allow_url=False, force=True)
    assert installed_path(art, cache).is_dir()


def test_onnx_backend_without_conversion_says_convert(tmp_path, shared):
    from bot.scoring.backends import load_backends

    cache = tmp_path / "c"
    pull(load_manifest("models"), cache, sources=[shared / "models"], allow_url=False)
    with pytest.raises(ArtifactError, match="btsbot models convert"):
        load_backends("onnx", cache)


def test_the_cli_is_quiet_and_writes_nothing_outside_the_cache(tmp_path, model_cache, alerts_dir):
    """No CUDA/oneDNN/absl lines on the terminal, and nothing under ~ (no ~/.keras, no onnxruntime
    ~/.cache/Microsoft, no matplotlib font cache): convert, score on each backend, demo, report."""
    import os
    import subprocess
    import sys

    home, cache, work = tmp_path / "home", tmp_path / "cache", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    shutil.copytree(model_cache, cache)
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "XDG_CACHE_HOME", "KERAS_HOME", "MPLCONFIGDIR")}
    env.update(HOME=str(home), BTSBOT_CACHE_DIR=str(cache))
    alert = str(sorted(alerts_dir.rglob("*.avro"))[0])
    runs = [["models", "convert", "--force"], ["score", alert, "--backend", "tensorflow"], ["score", alert],
            ["score", alert, "--backend", "onnx-int8"], ["demo", "--journal", "demo.sqlite"],
            ["report", "--journal", "demo.sqlite", "--night", "2023-10-04", "--out", "report"]]
    for args in runs:
        p = subprocess.run([sys.executable, "-m", "bot", *args], env=env, cwd=work,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (args, p.stderr)
        for noise in ("cuInit", "E0000", "I0000", "absl", "oneDNN", "cuda", "pre-processing"):
            assert noise not in p.stderr, p.stderr
    assert (work / "report" / "index.html").is_file()
    assert sorted(str(f.relative_to(home)) for f in home.rglob("*")) == [], list(home.rglob("*"))
    assert (cache / "models" / "btsbot" / "v1.0.1" / "model.int8.onnx").is_file()
