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
@pytest.mark.parametrize("found, says", [
    (None, "format None, this varcas reads 1 (written by an older varcas: rerun the command that made it)"),
    (0, "format 0, this varcas reads 1 (written by an older varcas"),
    (2, "format 2, this varcas reads 1 (written by a newer varcas: upgrade varcas to read it)"),
    ("1", "format '1', this varcas reads 1"),
    (True, "format True, this varcas reads 1"),
])
def test_another_version_is_one_line(tmp_path, kind, found, says):
    doc = {"x": 1} if found is None else {"x": 1, kind.key: found}
    (tmp_path / kind.name).write_text(json.dumps(doc))
    with pytest.raises(VarcasError) as err:
        files.read(tmp_path, kind)
    assert str(err.value).startswith(f"{tmp_path / kind.name}: {kind.what} {says}")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content, says", [
    (None, "missing (pipeline state)"),
    (b"{not json", "unreadable pipeline state (JSONDecodeError)"),
    (b"[1, 2]", "unreadable pipeline state (not a JSON object)"),
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
    (tmp_path / files.COMPARISON.name).write_text(json.dumps({"format_version": 1, "pad": "x" * 20}))
    with pytest.raises(VarcasError, match="not a sweep comparison \\(larger than 0 MiB\\)"):
        files.read(tmp_path, files.COMPARISON)
