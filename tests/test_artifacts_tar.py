"""A model tar is unpacked safely on Pythons without tarfile's "data" filter (Debian 12's 3.11.2)."""

import io
import tarfile

import pytest

from bot.artifacts import _safe_members


def _tar(*members: tarfile.TarInfo) -> tarfile.TarFile:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for m in members:
            t.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    buf.seek(0)
    return tarfile.open(fileobj=buf)


def _file(name):
    m = tarfile.TarInfo(name)
    m.size = 1
    return m


def test_regular_members_inside_pass_and_escapes_or_links_are_refused(tmp_path):
    d = tarfile.TarInfo("model")
    d.type = tarfile.DIRTYPE
    assert [m.name for m in _safe_members(_tar(d, _file("model/saved_model.pb")), tmp_path)] == \
        ["model", "model/saved_model.pb"]
    for bad in (_file("../evil"), _file("/etc/evil")):
        with pytest.raises(tarfile.TarError, match="outside"):
            _safe_members(_tar(bad), tmp_path)
    link = tarfile.TarInfo("model/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(tarfile.TarError, match="not a regular file"):
        _safe_members(_tar(link), tmp_path)
