"""`btsbot score` end to end: real packets, packets rebuilt from the example, and bad input."""

import copy
import json
import shutil

import numpy as np
import pytest
from avro_packets import avro_bytes, write_packet
from avro_packets import ztf_schema as build_schema

from bot.cli import main
from bot.sim.example_night import fits_stamp

COLUMNS = {"source", "objectId", "candid", "jd", "score", "status"}


def run_score(capsys, *args):
    rc = main(["score", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def json_rows(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_all_real_alerts_score_ok(capsys, model_cache, alerts_dir):
    rc, out, _ = run_score(capsys, alerts_dir, "--cache-dir", model_cache)
    assert rc == 0
    lines = out.splitlines()
    header = lines[0].split(",")
    assert COLUMNS <= set(header)
    rows = [dict(zip(header, line.split(","))) for line in lines[1:]]
    assert len(rows) == 36 and {r["status"] for r in rows} == {"ok"}
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
    assert all(r["source"].endswith(".avro") and r["objectId"].startswith("ZTF") for r in rows)
    assert len({int(r["candid"]) for r in rows}) == 36  # int64 candids printed exactly


@pytest.mark.parametrize("backend", ["onnx", "tensorflow"])
def test_packets_rebuilt_from_example_give_expected_scores(capsys, tmp_path, model_cache, example,
                                                           example_packets, ztf_schema, backend):
    rows, _ = example
    for i, packet in enumerate(example_packets):
        write_packet(tmp_path / f"{i:02d}_{packet['candid']}.avro", ztf_schema, packet)
    rc, out, _ = run_score(capsys, tmp_path, "--cache-dir", model_cache, "--format", "json", "--backend", backend)
    assert rc == 0
    got = json_rows(out)
    assert [r["candid"] for r in got] == [p["candid"] for p in example_packets]
    assert {r["status"] for r in got} == {"ok"}
    expected = np.array([float(r["expected_scores"]) for r in rows])
    assert np.abs(np.array([r["score"] for r in got]) - expected).max() < 1e-4


def _bad_inputs(tmp_path, real_packet, schema, loose_schema, alerts_dir):
    """Each bad input beside valid ones, with the status it must get."""
    cases = {}

    def packet(name, status, mutate, use_schema=schema):
        p = copy.deepcopy(real_packet)
        mutate(p)
        write_packet(tmp_path / f"{name}.avro", use_schema, p)
        cases[f"{name}.avro"] = status

    (tmp_path / "not_avro.avro").write_text("this is not an avro file\n")
    cases["not_avro.avro"] = "unreadable: not a readable avro file"
    good = next(alerts_dir.glob("20231012/*.avro")).read_bytes()
    (tmp_path / "truncated.avro").write_bytes(good[: len(good) // 2])
    cases["truncated.avro"] = "unreadable: not a readable avro file"

    def stamp(key, data):
        return lambda p: p[key].update(stampData=data)

    packet("stamp_not_gzip", "unscorable: cutoutScience: stamp is not gzip", stamp("cutoutScience", b"BZh91AY&SY"))
    packet("gzip_not_fits", "unscorable: cutoutTemplate: stamp is gzip but not a FITS image",
           stamp("cutoutTemplate", __import__("gzip").compress(b"hello")))
    packet("all_nan", "unscorable: cutoutDifference: cutout is empty after masking",
           stamp("cutoutDifference", fits_stamp(np.full((63, 63), np.nan))))
    packet("all_sentinel", "unscorable: cutoutTemplate: cutout is empty after masking",
           stamp("cutoutTemplate", fits_stamp(np.full((63, 63), -3.4028235e38))))
    packet("big_64", "unscorable: cutoutScience: cutout is 64x64, larger than 63x63",
           stamp("cutoutScience", fits_stamp(np.ones((64, 64)))))
    packet("null_feature", "unscorable: candidate.sgscore1 is null", lambda p: p["candidate"].update(sgscore1=None))
    packet("no_object_id", "unscorable: missing objectId", lambda p: p.update(objectId=None), loose_schema)
    return cases


def test_bad_input_beside_valid_alerts(capsys, tmp_path, model_cache, alerts_dir, real_alerts, shared, ztf_schema):
    real = next(a for a in real_alerts if a["schemavsn"] == "4.01")
    loose = build_schema(shared / "schemas" / "ztf", nullable_object_id=True)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    cases = _bad_inputs(bad_dir, real, ztf_schema, loose, alerts_dir)
    shutil.copytree(alerts_dir, tmp_path / "good")
    missing = tmp_path / "does_not_exist.avro"
    rc, out, err = run_score(capsys, tmp_path / "good", bad_dir, missing, "--cache-dir", model_cache, "--format", "json")
    assert rc == 1 and f"{missing}: no such file or directory" in err  # said on stderr, the rest still scored
    rows = json_rows(out)
    assert len(rows) == 36 + len(cases) + 1  # every input appears
    by_name = {r["source"].rsplit("/", 1)[-1]: r for r in rows}
    for name, status in cases.items():
        assert by_name[name]["status"].startswith(status), (name, by_name[name]["status"])
        assert by_name[name]["score"] is None
    assert by_name["does_not_exist.avro"]["status"] == "unreadable: no such file"
    good = [r for r in rows if "/good/" in r["source"]]
    assert len(good) == 36 and {r["status"] for r in good} == {"ok"}
    # the valid alerts' scores are the ones they get when scored alone
    rc, alone, _ = run_score(capsys, tmp_path / "good", "--cache-dir", model_cache, "--format", "json")
    assert [r["score"] for r in json_rows(alone)] == [r["score"] for r in good]


def test_many_alerts_in_one_file_and_drb_from_alert(capsys, tmp_path, model_cache, example_packets, ztf_schema):
    (tmp_path / "night.avro").write_bytes(avro_bytes(ztf_schema, example_packets[:5]))
    rc, out, _ = run_score(capsys, tmp_path / "night.avro", "--cache-dir", model_cache, "--format", "json",
                           "--drb-source", "alert")
    rows = json_rows(out)
    assert rc == 0 and len(rows) == 5
    # these alerts' own drb is d6_m7, not the d6_m9 the model was trained on: not used, not imputed
    assert {r["status"] for r in rows} == {"unscorable: new_drb is missing"}


def test_missing_model_is_a_one_line_error(capsys, tmp_path, alerts_dir):
    rc, out, err = run_score(capsys, alerts_dir, "--cache-dir", tmp_path / "empty")
    assert rc == 3 and out == ""
    assert len(err.strip().splitlines()) == 1 and "btsbot models pull" in err


def test_usage_errors_exit_nonzero(capsys):
    with pytest.raises(SystemExit) as info:
        main(["score"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["score", "x.avro", "--backend", "pytorch"])
    assert info.value.code == 2
