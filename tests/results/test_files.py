"""The versioned result files: written with their format version, refused on read when the
version is missing, older or newer, or the file is not a JSON object, each in one line."""
from __future__ import annotations

import json

import pytest

from varcas.errors import VarcasError
from varcas.results import files

KINDS = (files.SWEEP, files.COMPARISON, files.CAPACITY, files.PIPELINE)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_written_file_reads_back_with_its_version(tmp_path, kind):
    path = files.write(tmp_path, kind, {"a": [1, 2], kind.key: 999})  # the writer's version wins
    assert path == tmp_path / kind.name
    assert json.loads(path.read_text())[kind.key] == kind.version
    assert files.read(tmp_path, kind) == {"a": [1, 2], kind.key: kind.version}
    assert files.exists(tmp_path, kind)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
@pytest.mark.parametrize("found, says", [  # found and says as functions of the version this varcas reads
    (lambda v: None, "format None, this varcas reads {v} (written by an older varcas: rerun the command that made it)"),
    (lambda v: v - 1, "format {older}, this varcas reads {v} (written by an older varcas"),
    (lambda v: v + 1, "format {newer}, this varcas reads {v} (written by a newer varcas: upgrade varcas to read it)"),
    (str, "format '{v}', this varcas reads {v}"),
    (lambda v: True, "format True, this varcas reads {v}"),
], ids=["missing", "older", "newer", "text", "bool"])
def test_another_version_is_one_line(tmp_path, kind, found, says):
    version = found(kind.version)
    doc = {"x": 1} if version is None else {"x": 1, kind.key: version}
    (tmp_path / kind.name).write_text(json.dumps(doc))
    with pytest.raises(VarcasError) as err:
        files.read(tmp_path, kind)
    says = says.format(v=kind.version, older=kind.version - 1, newer=kind.version + 1)
    assert str(err.value).startswith(f"{tmp_path / kind.name}: {kind.what} {says}")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content, says", [
    (None, "no such file (pipeline state)"),
    (b"{not json", "unreadable pipeline state (JSONDecodeError: not JSON?)"),
    (b"[1, 2]", "not a pipeline state (not a JSON object)"),
    (b"\xff\xfe", "unreadable pipeline state"),
])
def test_a_broken_file_is_one_line(tmp_path, content, says):
    if content is not None:
        (tmp_path / files.PIPELINE.name).write_bytes(content)
    with pytest.raises(VarcasError) as err:
        files.read(tmp_path, files.PIPELINE)
    assert str(err.value).startswith(f"{tmp_path / files.PIPELINE.name}: {says}")


def test_a_huge_file_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_BYTES", 10)
    (tmp_path / files.COMPARISON.name).write_text(json.dumps({"format_version": files.COMPARISON.version, "pad": "x" * 20}))
    with pytest.raises(VarcasError, match="not a sweep comparison \\(larger than 0 MiB\\)"):
        files.read(tmp_path, files.COMPARISON)
