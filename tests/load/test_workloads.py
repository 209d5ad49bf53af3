"""Workloads: length distributions, shipped workload files, user files and their errors."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from varcas.errors import VarcasError
from varcas.schedule.workloads import (
    INT32_MAX,
    LengthDist,
    Workload,
    list_workloads,
    load_workload,
    parse_workload,
)

SHIPPED = {"chat_low": 5, "chat_medium": 20, "chat_high": 50, "summarize": 5, "code": 5}


def test_list_workloads_is_exactly_the_shipped_set_sorted():
    assert list_workloads() == sorted(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_workload_loads_with_its_rate_and_says_where_numbers_come_from(name):
    w = load_workload(name)
    assert w.name == name
    assert w.rps == SHIPPED[name]
    assert "arXiv" in w.description or "chosen, not measured" in w.description
    assert parse_workload(w.to_dict()) == w


@pytest.mark.parametrize("name, in_band, out_band", [
    ("chat_medium", (150, 250), (100, 150)),
    ("summarize", (1500, 3000), (100, 200)),
    ("code", (300, 600), (500, 1000)),
])
def test_shipped_medians_fall_in_their_use_case_band(name, in_band, out_band):
    w = load_workload(name)
    rng = np.random.default_rng(0)
    assert in_band[0] <= np.median(w.input.sample(rng, 20_000)) <= in_band[1]
    assert out_band[0] <= np.median(w.output.sample(rng, 20_000)) <= out_band[1]


def test_fixed_gives_the_value_as_int32():
    out = LengthDist("fixed", value=42).sample(np.random.default_rng(0), 5)
    assert out.dtype == np.int32
    assert out.tolist() == [42] * 5


def test_fixed_is_clamped():
    assert LengthDist("fixed", value=42, max=40).sample(np.random.default_rng(0), 2).tolist() == [40, 40]


def test_uniform_covers_both_ends_and_nothing_else():
    out = LengthDist("uniform", low=3, high=5).sample(np.random.default_rng(1), 3000)
    assert set(out.tolist()) == {3, 4, 5}


@pytest.mark.parametrize("median, expected", [(100.4, 100), (100.6, 101), (1e6, 500), (1e-3, 7)])
def test_lognormal_rounds_to_nearest_then_clamps(median, expected):
    # sigma this small makes every draw equal the median to ~1e-9 relative.
    d = LengthDist("lognormal", median=median, sigma=1e-12, min=7, max=500)
    assert d.sample(np.random.default_rng(0), 4).tolist() == [expected] * 4


def test_sample_zero_is_empty_int32():
    out = LengthDist("lognormal", median=10, sigma=1).sample(np.random.default_rng(0), 0)
    assert out.dtype == np.int32 and len(out) == 0


@settings(max_examples=25, deadline=None)
@given(median=st.floats(5, 5000), sigma=st.floats(0.05, 1.5), seed=st.integers(0, 2**32))
def test_lognormal_median_and_clamps(median, sigma, seed):
    d = LengthDist("lognormal", median=median, sigma=sigma, min=2, max=20_000)
    out = d.sample(np.random.default_rng(seed), 20_000)
    assert out.dtype == np.int32
    assert out.min() >= 2 and out.max() <= 20_000
    # Sample median's relative std error is ~1.25*sigma/sqrt(n) < 1.4%; rounding adds 0.5.
    assert abs(np.median(out) - median) <= 0.07 * median + 1


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 500), k=st.integers(0, 500))
def test_sample_is_deterministic_and_prefix_consistent(seed, n, k):
    d = LengthDist("lognormal", median=100, sigma=1.0)
    long = d.sample(np.random.default_rng(seed), n + k)
    short = d.sample(np.random.default_rng(seed), n)
    np.testing.assert_array_equal(long[:n], short)


def test_user_file_by_path_and_name_defaults_to_file_stem(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"rps": 2.5, "input": {"kind": "fixed", "value": 10},
                                "output": {"kind": "uniform", "low": 1, "high": 4, "max": 3}}))
    assert load_workload(str(path)) == Workload(
        name="mine", description="", rps=2.5, input=LengthDist("fixed", value=10),
        output=LengthDist("uniform", low=1, high=4, max=3))


def test_unknown_name_lists_known_names():
    with pytest.raises(VarcasError, match="unknown workload 'chat_huge'") as e:
        load_workload("chat_huge")
    assert all(name in str(e.value) for name in SHIPPED)


GOOD = {"name": "w", "rps": 1, "input": {"kind": "fixed", "value": 3},
        "output": {"kind": "lognormal", "median": 10, "sigma": 0.5}}


def _with(path, value):
    """GOOD with the dotted field path set to value (or removed when value is ...)."""
    data = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize("path, value, message", [
    ("rps", 0, "field 'rps': must be > 0"),
    ("rps", "fast", "field 'rps': must be a finite number"),
    ("rps", True, "field 'rps': must be a finite number"),
    ("rps", ..., "field 'rps': is required"),
    ("name", "", "field 'name': must be a non-empty string"),
    ("description", 3, "field 'description': must be a string"),
    ("speed", 3, "field 'speed': unknown field"),
    ("input", [1], "field 'input': must be a JSON object"),
    ("input.kind", "normal", "field 'input.kind': must be one of fixed, lognormal, uniform"),
    ("input.kind", ..., "field 'input.kind': is required"),
    ("input.value", 0, "field 'input.value': must be between 1 and"),
    ("input.value", 2.5, "field 'input.value': must be an integer"),
    ("input.median", 4, "field 'input.median': does not apply to kind 'fixed'"),
    ("output.sigma", -1, "field 'output.sigma': must be > 0"),
    ("output.sigma", ..., "field 'output.sigma': is required"),
    ("output.sigmaa", 1, "field 'output.sigmaa': unknown field"),
    ("output.min", 0, "field 'output.min': must be between 1 and"),
    ("output.max", INT32_MAX + 1, "field 'output.max': must be between 1 and"),
    ("output.kind", "uniform", "field 'output.median': does not apply to kind 'uniform'"),
])
def test_bad_field_names_file_and_field(tmp_path, path, value, message):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(_with(path, value)))
    with pytest.raises(VarcasError) as e:
        load_workload(str(f))
    assert str(e.value).startswith(f"workload file {f}: ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "uniform", "low": 5, "high": 4}, "high: must be >= low (5), got 4"),
    ({"kind": "fixed", "value": 5, "min": 10, "max": 9}, "max: must be >= min (10), got 9"),
    ({"kind": "lognormal", "median": float("nan"), "sigma": 1}, "median: must be a finite number"),
    ({"kind": "uniform", "low": 1}, "high: is required"),
])
def test_length_dist_constructor_rejects(kwargs, message):
    with pytest.raises(VarcasError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LengthDist(**kwargs)


def test_top_level_not_an_object(tmp_path):
    f = tmp_path / "list.json"
    f.write_text("[1, 2]")
    with pytest.raises(VarcasError, match=f"workload file {f}: must be a JSON object, got list"):
        load_workload(str(f))


def test_invalid_json_gives_line_and_column(tmp_path):
    f = tmp_path / "broken.json"
    f.write_text('{"rps": 1,\n "input": }')
    with pytest.raises(VarcasError, match=f"workload file {f}: invalid JSON at line 2 column 11"):
        load_workload(str(f))


def test_missing_or_unreadable_file(tmp_path):
    with pytest.raises(VarcasError, match="cannot read workload file .*nope.json"):
        load_workload(str(tmp_path / "nope.json"))
    with pytest.raises(VarcasError, match="cannot read workload file"):
        load_workload(str(tmp_path) + "/")
