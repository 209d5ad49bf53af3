"""load_run: run directories, bare Parquet files, recovery from requests.arrows, bad input."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from varcas import rundir
from varcas.analyze import load_run
from varcas.analyze.run import NO_COUNT, NO_ERROR, NO_TIME
from varcas.errors import VarcasError

from . import synth


def small_columns(n=30):
    cols = synth.simulate(np.arange(n) / 10, prefill_ms=50, itl_ms=10, tokens=np.arange(n) % 4 + 1)
    cols = synth.fail(cols, [3, 7], "http", status=500)
    cols["sent_ns"][7] = synth.NULL  # failed before sending
    return cols


def assert_same_run(run, cols):
    assert run.n == cols["request_id"].size
    assert np.array_equal(run.token_offsets, cols["token_offsets"])
    assert np.array_equal(run.token_ns, cols["token_ns"])
    assert np.array_equal(run.scheduled_ns, cols["scheduled_ns"])
    assert run.sent_ns[7] == NO_TIME and run.first_token_ns[3] == NO_TIME
    assert run.output_tokens[3] == NO_COUNT
    assert [run.error_names[c] if c != NO_ERROR else None for c in run.error] == cols["error"]
    assert run.http_status[3] == 500


def test_directory_parquet_file_and_arrows_read_the_same(tmp_path):
    cols = small_columns()
    both = synth.write_run(tmp_path / "both", cols, arrows=True)
    from_dir = load_run(both)
    assert_same_run(from_dir, cols)
    assert not from_dir.from_arrows and from_dir.start_ns == synth.START_NS
    from_file = load_run(both / rundir.PARQUET)  # manifest from the Parquet metadata
    assert_same_run(from_file, cols)
    assert from_file.name == "both" and from_file.manifest["status"] == "complete"
    crashed = synth.write_run(tmp_path / "crashed", cols, parquet=False, arrows=True, status="running")
    recovered = load_run(crashed)  # 30 rows in batches of 1000: one chunk; see below for many
    assert recovered.from_arrows
    assert_same_run(recovered, cols)


def test_many_chunks_and_null_token_lists(tmp_path):
    cols = small_columns(2500)  # arrows batches of 1000 rows: three chunks to stitch together
    run_dir = synth.write_run(tmp_path / "chunks", cols, parquet=False, arrows=True)
    assert_same_run(load_run(run_dir), cols)
    table = synth.table(cols)
    lists = table["token_ns"].combine_chunks()
    nulled = pa.ListArray.from_arrays(lists.offsets, lists.values, mask=pa.array(np.arange(2500) == 0))
    table = table.set_column(table.schema.get_field_index("token_ns"), "token_ns", nulled)
    rundir.write_parquet(table, run_dir / rundir.PARQUET, synth.manifest(cols))
    run = load_run(run_dir)
    assert run.token_offsets[1] == 0  # the null list is empty, its values dropped
    assert np.array_equal(run.token_ns, cols["token_ns"][cols["token_offsets"][1]:])


def test_missing_start_ns_falls_back_to_first_scheduled(tmp_path):
    cols = small_columns()
    run_dir = synth.write_run(tmp_path / "old", cols)
    doc = json.loads((run_dir / rundir.MANIFEST).read_text())
    del doc["start_ns"], doc["client"], doc["counts"]  # an older, partial manifest
    rundir.write_manifest(run_dir, doc)
    assert load_run(run_dir).start_ns == cols["scheduled_ns"][0]


def test_bad_input_is_a_one_line_error(tmp_path):
    cols = small_columns()
    good = synth.write_run(tmp_path / "good", cols)
    cases = {}
    cases["no such file"] = tmp_path / "absent"
    (tmp_path / "empty").mkdir()
    cases["not a varcas run directory"] = tmp_path / "empty"
    corrupt = synth.write_run(tmp_path / "corrupt", cols)
    (corrupt / rundir.PARQUET).write_bytes(b"PAR1 this is not parquet")
    cases["corrupt or unreadable Parquet"] = corrupt
    newer = synth.write_run(tmp_path / "newer", cols, schema_version=rundir.SCHEMA_VERSION + 1)
    cases["newer than this varcas reads"] = newer
    stray = tmp_path / "stray.parquet"
    pq.write_table(synth.table(cols).replace_schema_metadata(None), stray)  # no varcas metadata
    cases["no schema version"] = stray
    bare = tmp_path / "bare" / rundir.PARQUET
    bare.parent.mkdir()
    rundir.write_parquet(synth.table(cols), bare)  # versioned, but no manifest anywhere
    cases["no run manifest"] = bare
    partial = tmp_path / "partial"
    partial.mkdir()
    rundir.write_manifest(partial, synth.manifest(cols))
    rundir.write_parquet(synth.table(cols).drop_columns(["end_ns"]), partial / rundir.PARQUET)
    cases["missing columns: end_ns"] = partial
    for message, path in cases.items():
        with pytest.raises(VarcasError, match=message) as caught:
            load_run(path)
        assert "\n" not in str(caught.value)
    assert load_run(good).n == 30


def _rewrite(tmp_path, name, cols, column, array):
    run = synth.write_run(tmp_path / name, cols)
    table = synth.table(cols)
    table = table.set_column(table.schema.get_field_index(column), column, array)
    rundir.write_parquet(table, run / rundir.PARQUET, synth.manifest(cols))
    return run


@pytest.mark.parametrize("field, value, message", [
    ("config", 5, "run.json field 'config' must be an object, got int"),
    ("target", "x", "run.json field 'target' must be an object, got str"),
    ("counts", [1], "run.json field 'counts' must be an object, got list"),
    ("client", True, "run.json field 'client' must be an object, got bool"),
    ("start_ns", "0", "run.json field 'start_ns' must be an integer, got str"),
    ("start_ns", True, "run.json field 'start_ns' must be an integer, got bool"),
    ("status", 3, "run.json field 'status' must be a string, got int"),
])
def test_wrongly_typed_manifest_fields_are_one_line_errors(tmp_path, field, value, message):
    run = synth.write_run(tmp_path / "r", small_columns(), **{field: value})
    with pytest.raises(VarcasError, match=message):
        load_run(run)


def test_wrongly_typed_or_impossible_columns_are_one_line_errors(tmp_path):
    cols = small_columns()
    n = cols["request_id"].size
    cases = {
        "column sent_ns is string": pa.array([str(x) for x in cols["sent_ns"]]),
        "column end_ns is double": pa.array(cols["end_ns"].astype(float)),
        "column token_ns is list<element: double>": pa.array([[1.5]] * n, pa.list_(pa.float64())),
        "column error is int64": pa.array(np.zeros(n, np.int64)),
        "column end_ns holds times more than 100 years": pa.array(
            np.where(np.arange(n) == 5, np.iinfo(np.int64).max, cols["end_ns"])),
        "column sent_ns holds times more than 100 years": pa.array(
            np.where(np.arange(n) == 2, np.iinfo(np.int64).min + 1, cols["sent_ns"])),
    }
    for k, (message, array) in enumerate(cases.items()):
        column = message.split()[1]
        run = _rewrite(tmp_path, f"c{k}", cols, column, array)
        with pytest.raises(VarcasError, match=message) as caught:
            load_run(run)
        assert "\n" not in str(caught.value)


def test_the_cli_reports_a_wrongly_typed_run_in_one_line(tmp_path, capsys):
    from tests.cli_helpers import cli

    run = synth.write_run(tmp_path / "r", small_columns(), config=5)
    for command in ("analyze", "report"):
        code, out, err = cli(capsys, command, run)
        assert code == 2 and "run.json field 'config' must be an object" in err and len(err.strip().splitlines()) == 1
