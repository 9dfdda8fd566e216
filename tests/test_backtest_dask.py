"""`btsbot backtest --alerts … --dask`: the files scored on Dask workers give what one process gives, to the
last digit (output, score cache, the Sample itself); each worker loads the models once; a worker that dies is
retried; unreadable files are reported as without Dask; and the errors are one line with an exit code.

One LocalCluster of 2 worker processes serves the module (commands reach it as `--dask tcp://…`); one test
starts its own with `--dask local:2`."""

import json
import logging
import os
import socket
import sqlite3
import sys

import pytest
from avro_packets import write_packet
from conftest import CV, SN
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from bot.backtest import distributed as bt_dask
from bot.backtest import sources
from bot.backtest.cache import ScoreCache, preprocessing_key
from bot.cli import main
from bot.config import load_config


@pytest.fixture(scope="module")
def client(model_cache):
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture
def inputs(alerts_dir, tmp_path):
    """The 36 real alerts, a file that is not avro and a path that does not exist."""
    bad = tmp_path / "bad.avro"
    bad.write_bytes(b"not an avro file")
    return [str(alerts_dir), str(bad), str(tmp_path / "missing.avro")]


def _spec(model_cache):
    return sources.ScorerSpec.from_config(load_config(None), "onnx", str(model_cache))


def _table(path, sql):
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def _same_sample(a, b):
    assert b.alerts == a.alerts  # every field of every row, in the same order
    assert (b.inputs, b.unreadable, b.unscorable, b.scored_now, b.cached) == \
        (a.inputs, a.unreadable, a.unscorable, a.scored_now, a.cached)


def test_backtest_output_and_score_cache_are_the_single_process_ones(capsys, client, inputs, model_cache,
                                                                     real_alerts, tmp_path):
    labels = tmp_path / "labels.csv"
    oids = sorted({a["objectId"] for a in real_alerts})
    labels.write_text("objectId,label\n" + "".join(f"{o},{i % 2}\n" for i, o in enumerate(oids)))
    argv = ["backtest", "--alerts", *inputs, "--cache-dir", str(model_cache), "--labels", str(labels),
            "--set", "min_alerts=1", "--sweep", "min_score=0.1:0.9:0.1", "--format", "json"]
    one = _run(capsys, [*argv, "--score-cache", str(tmp_path / "one.sqlite")])
    dask = _run(capsys, [*argv, "--score-cache", str(tmp_path / "dask.sqlite"), "--dask", client.scheduler.address])
    assert one[0] == dask[0] == 0
    assert dask[1] == one[1] and len(one[1].splitlines()) == 18  # 2 policies x 9 thresholds, byte for byte
    progress = [line for line in dask[2] if line.startswith("btsbot: dask:")]
    assert [line for line in dask[2] if line not in progress] == one[2]
    assert progress[0].startswith("btsbot: dask: 38 files in 8 partitions of <= 5 on 2 worker(s)")
    assert progress[-1].startswith("btsbot: dask: partition 8/8 (38/38 files, 36 alerts scored")
    assert "38 inputs; 36 scored now, 0 from the score cache; 0 unscorable, 2 unreadable files" in one[2][0]
    assert f"btsbot:   unreadable: {inputs[1]}: not a readable avro file" in "\n".join(dask[2])
    assert f"btsbot:   unreadable: {inputs[2]}: no such file" in dask[2]
    for sql in ("SELECT * FROM scores ORDER BY candid", "SELECT * FROM files ORDER BY path"):
        rows = _table(tmp_path / "one.sqlite", sql)
        assert _table(tmp_path / "dask.sqlite", sql) == rows and len(rows) == 36

    warm = _run(capsys, [*argv, "--score-cache", str(tmp_path / "dask.sqlite"), "--dask", client.scheduler.address])
    assert warm[1] == one[1]
    summary = [line for line in warm[2] if " alerts of " in line]
    assert "38 inputs; 0 scored now, 36 from the score cache" in summary[0]  # only the 2 unreadable read again
    assert [line for line in warm[2] if line.startswith("btsbot: dask: 2 files in 2 partitions")]


@pytest.mark.parametrize("chunk, partition", [(128, None), (7, 3)])
def test_the_sample_is_from_files_one_with_a_partial_cache_and_fsspec_urls(client, inputs, model_cache, tmp_path,
                                                                           chunk, partition):
    """Scores cached without the file index (another path, a changed file, a URL) are read back, not rescored;
    chunks of 7 files (each in partitions of 3) are merged in from_files' order."""
    spec = _spec(model_cache)
    mv, pp = spec.model_version, preprocessing_key(spec.drb_source, "packet", spec.precision)
    first = sources.from_files(inputs, spec, None)
    some = first.alerts[::3]
    caches = []
    for name in ("one", "dask"):
        cache = ScoreCache(tmp_path / f"{name}.sqlite")
        cache.put(some, mv, pp)
        caches.append(cache)
    one = sources.from_files(inputs, spec, caches[0], chunk=chunk)
    urls = ["file://" + inputs[0], *inputs[1:]]
    dask = bt_dask.from_files(urls, spec, caches[1], client, chunk=chunk, partition=partition, note=lambda line: None)
    _same_sample(one, dask)
    assert one.alerts != first.alerts  # the order where cached and scored alerts mix: from_files' own
    assert dask.cached == len(some) == 12 and dask.scored_now == 24
    assert [p for p, _ in dask.unreadable] == inputs[1:] and dask.unreadable[1][1] == "no such file"
    assert [a["score"] for a in dask.alerts if a["candid"] not in {s["candid"] for s in some}] == \
        [a["score"] for a in first.alerts if a["candid"] not in {s["candid"] for s in some}]
    assert set(dask.evidence(dask.alerts[0]["candid"])) >= {"lightcurve"}  # read again through the URL
    for cache in caches:
        cache.close()


def test_each_worker_loads_the_models_once(client, inputs, model_cache):
    spec = _spec(model_cache)
    before = client.run(bt_dask.scorer_loads)
    sample = bt_dask.from_files(inputs, spec, None, client, partition=1, note=lambda line: None)
    assert sample.scored_now == 36
    after = client.run(bt_dask.scorer_loads)
    desc = bt_dask.ScorerDescription.of(spec)
    done = {w: s["partitions"].get(desc, 0) - before[w]["partitions"].get(desc, 0) for w, s in after.items()}
    assert sum(done.values()) == 38 and len({s["pid"] for s in after.values()}) == 2  # 38 files, 1 per partition
    for worker, state in after.items():
        assert state["pid"] != os.getpid()
        assert state["loads"].get(desc) == (1 if state["partitions"].get(desc) else None)  # however many tasks
        assert set(state["loads"].values()) == {1}  # every scorer the earlier tests used: once too


def test_example_night_with_a_local_cluster_of_two_workers(capsys, example_packets, ztf_schema, model_cache, tmp_path):
    night = tmp_path / "night"
    night.mkdir()
    for i, packet in enumerate(example_packets):
        write_packet(night / f"{i:02d}_{packet['candid']}.avro", ztf_schema, packet)
    labels = tmp_path / "labels.csv"
    labels.write_text(f"objectId,label\n{SN},1\n{CV},0\n")
    argv = ["backtest", "--alerts", str(night), "--cache-dir", str(model_cache), "--labels", str(labels),
            "--format", "json"]
    one = _run(capsys, [*argv, "--score-cache", str(tmp_path / "one.sqlite")])
    dask = _run(capsys, [*argv, "--score-cache", str(tmp_path / "dask.sqlite"), "--dask", "local:2"])
    assert one[0] == dask[0] == 0 and dask[1] == one[1]
    rows = [json.loads(line) for line in dask[1].splitlines()]
    assert [d["utc"] for r in rows for d in r["decisions"]] == ["2023-10-05 10:37:55 UTC"] * 2
    assert any(line.startswith("btsbot: dask: partition 8/8") for line in dask[2])
    sql = "SELECT * FROM scores ORDER BY candid"
    assert _table(tmp_path / "dask.sqlite", sql) == _table(tmp_path / "one.sqlite", sql)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_errors_are_one_line_with_an_exit_code(capsys, monkeypatch, alerts_dir, model_cache, onnx_scorer, tmp_path):
    from bot.backtest import cli as bt_cli
    from bot.cli import build_parser

    base = ["backtest", "--cache-dir", str(model_cache), "--score-cache", str(tmp_path / "c.sqlite")]
    cases = [
        (["--journal", str(tmp_path / "j.sqlite"), "--dask", "local:2"], 2, "--dask scores alert files: it needs --alerts"),
        (["--alerts", str(alerts_dir), "--dask", "local:0"], 2, "--dask local:0: expected local:N"),
        (["--alerts", str(alerts_dir), "--dask", "scheduler:8786"], 2, "--dask scheduler:8786: expected local:N"),
    ]
    monkeypatch.setattr(bt_dask, "CONNECT_TIMEOUT_S", 1.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    cases.append((["--alerts", str(alerts_dir), "--dask", address], 1, f"--dask {address}: no Dask scheduler answers"))
    for flags, code, message in cases:
        got = _run(capsys, [*base, *flags])
        assert got[0] == code and len(got[2]) == 1 and got[2][0].startswith(f"btsbot: {message}"), (flags, got)
    argv = [*base, "--alerts", str(alerts_dir), "--dask", "local:1"]
    assert bt_cli.cmd_backtest(build_parser().parse_args(argv), spec=sources.ScorerSpec.of(onnx_scorer)) == 2
    assert "builds the scorer of the config on each worker" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)  # dask not installed
    got = _run(capsys, argv)
    assert got[0] == 2 and got[2] == ['btsbot: Dask is not installed: pip install "btsbot[dask]"']


class _DieOnce(WorkerPlugin):
    """Kills the first worker process that starts a task (the nanny restarts it)."""

    name = "die-once"

    def __init__(self, marker):
        self.marker = str(marker)

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)


def test_a_worker_that_dies_is_retried_and_changes_nothing(client, inputs, model_cache, tmp_path):
    spec = _spec(model_cache)
    one = sources.from_files(inputs, spec, None)
    marker = tmp_path / "died"
    client.register_plugin(_DieOnce(marker))
    try:
        dask = bt_dask.from_files(inputs, spec, None, client, note=lambda line: None)
    finally:
        client.unregister_worker_plugin(_DieOnce.name)
    assert marker.exists()  # a worker did die mid-run
    _same_sample(one, dask)
    client.wait_for_workers(2, timeout=60)
    loads = client.run(bt_dask.scorer_loads)
    assert all(set(s["loads"].values()) <= {1} for s in loads.values())  # the new process loaded them once too
