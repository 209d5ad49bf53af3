"""The request schedule: when each request leaves and how long its prompt and reply are.

The whole schedule is computed before the run as three numpy arrays, so the dispatcher only
reads array slots on the hot path, and the same arguments and seed give byte-identical arrays.

Arrival processes (rates in requests/s, offsets in ns from the run's start):
  poisson   exponential gaps of mean 1/rps.
  gamma     gamma gaps, shape = burstiness, scale = 1/(rps*burstiness): vLLM's benchmark
            definition (vllm/benchmarks/serve.py). Mean gap 1/rps for any burstiness;
            burstiness < 1 is burstier than Poisson, > 1 smoother, == 1 is Poisson in law.
  constant  offset of request i is exactly i/rps (rounded to the ns); the first is at 0.
  trace     offsets and lengths replayed from a file (see read_trace).
For poisson and gamma the first request leaves at its first gap, not at 0 (as in vLLM): then
every gap, the first included, follows the stated law and the offsets form a stationary
process, so a window at the start is like a window anywhere. Unlike vLLM, the drawn offsets
are kept as drawn: vLLM rescales them so that n requests span exactly n/rps seconds.

An infinite rps (vLLM's --request-rate inf) sends every request at offset 0; it needs
num_requests. A ramp-up (arrivals.RAMPS: vLLM's --ramp-up-strategy) gives each of
num_requests requests its own rate and draws its gap at that rate (poisson or gamma); it
takes no rps.

The run ends at whichever comes first: offsets < duration_s, or num_requests requests.

Lengths: the workload's distributions, or a fixed input_len/output_len; a range ratio r
(vLLM's --random-range-ratio) spreads a fixed length L to integers uniform in
[floor(L*(1-r)), ceil(L*(1+r))] (at least 1). A BurstGPT file (trace_format "burstgpt",
dataset_files.read_burstgpt) is a trace: its timestamps, less the first, are the offsets; with
another arrival process only its lengths are used, in file order, repeated when the run needs
more requests than it has. A Shape (shapes.py) adds shared prefixes and conversations.

Four independent RNG streams, spawned from numpy SeedSequence(seed), drive the arrivals,
the input lengths, the output lengths and the think times, so changing the rate or the
arrival process does not change the length sequence (request k gets the same lengths in both
runs). All draws are sequential, so a shorter run's schedule is a prefix of a longer one's
with the same seed and rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import VarcasError
from .arrivals import (
    ARRIVALS,
    MAX_OFFSET_S,
    MAX_REQUESTS,
    RAMPS,
    TRACE,
    ramp_offsets,
    ramp_rates,
)
from .dataset_files import csv_columns, jsonl_objects, read_burstgpt
from .shapes import Shape, conversations_for, prompt_lengths, think_times
from .workloads import INT32_MAX, LengthDist, Workload

TRACE_FIELDS = ("offset_s", "input_tokens", "output_tokens")
TRACE_FORMATS = ("varcas", "burstgpt")  # read_trace's files; BurstGPT's CSV


@dataclass
class Schedule:
    """Per-request arrays of equal length: planned send offset from the run's start
    (int64 ns, non-decreasing, first >= 0), prompt tokens and max output tokens (int32).
    With conversations (shape.turns > 1, layout in shapes.py) only the first `timed` requests
    have offsets; the others' are -1, sent think_ns after their previous turn ends, and
    user_len holds each request's own message (input_len adds the prefix and earlier turns)."""

    offset_ns: np.ndarray
    input_len: np.ndarray
    output_len: np.ndarray
    shape: Shape = field(default_factory=Shape)
    user_len: np.ndarray | None = None  # None for a plain shape: the prompt is input_len
    think_ns: np.ndarray | None = None  # None without conversations

    def __post_init__(self) -> None:
        n = len(self.offset_ns)
        for name, dtype in (("offset_ns", np.int64), ("input_len", np.int32), ("output_len", np.int32),
                            ("user_len", np.int32), ("think_ns", np.int64)):
            arr = getattr(self, name)
            if arr is not None and (arr.dtype != dtype or arr.ndim != 1 or len(arr) != n):
                raise ValueError(f"Schedule.{name} must be a 1-d {np.dtype(dtype)} array of length {n}")
        if n % self.shape.turns:
            raise ValueError(f"Schedule: {n} requests are not conversations of {self.shape.turns} turns")

    def __len__(self) -> int:
        return len(self.offset_ns)

    @property
    def timed(self) -> int:
        """Requests sent at their offsets (the first turns); the rest follow earlier turns."""
        return len(self) // self.shape.turns

    @property
    def duration_s(self) -> float:
        """Offset of the last timed request in seconds (0.0 for an empty schedule)."""
        return float(self.offset_ns[self.timed - 1]) / 1e9 if len(self) else 0.0


def build_schedule(*, workload: Workload, rps: float | None, arrival: str = "poisson",
                   burstiness: float = 1.0, duration_s: float | None = None,
                   num_requests: int | None = None, input_len: int | None = None,
                   output_len: int | None = None, seed: int = 0,
                   trace_path: str | None = None, ramp: tuple[str, float, float] | None = None,
                   range_ratio: tuple[float, float] = (0.0, 0.0), shape: Shape = Shape(),
                   trace_format: str = "varcas") -> Schedule:
    """Compute the schedule; see the module docstring for the semantics.

    rps None means workload.rps. input_len/output_len, when given, replace the workload's
    (or the trace's) lengths with that fixed value, spread by range_ratio (input, output).
    A trace takes its rate from its offsets, so rps must be None with arrival="trace";
    duration_s and num_requests still cut it. ramp is (strategy, start_rps, end_rps) of a
    ramp-up over num_requests requests. With conversations, the arrival process (rate,
    duration, ramp) starts conversations, and num_requests is rounded up to whole ones.
    Every bad argument raises a one-line VarcasError.
    """
    _validate(workload=workload, rps=rps, arrival=arrival, burstiness=burstiness,
              duration_s=duration_s, num_requests=num_requests, input_len=input_len,
              output_len=output_len, seed=seed, trace_path=trace_path, ramp=ramp, shape=shape,
              range_ratio=range_ratio, trace_format=trace_format)
    arrival_ss, input_ss, output_ss, think_ss = np.random.SeedSequence(seed).spawn(4)
    trace_in = trace_out = None
    if arrival == TRACE:
        offsets, trace_in, trace_out = _read_trace(trace_path, trace_format)
        keep = _trace_cut(offsets, duration_s, num_requests)
        offsets, trace_in, trace_out = offsets[:keep], trace_in[:keep], trace_out[:keep]
    else:
        offsets = _offsets(workload, rps, arrival, burstiness, duration_s,
                           conversations_for(num_requests, shape.turns), ramp, np.random.default_rng(arrival_ss))
        if trace_path:  # a BurstGPT file's lengths under another arrival process
            _, trace_in, trace_out = read_burstgpt(trace_path)
            trace_in, trace_out = np.resize(trace_in, len(offsets)), np.resize(trace_out, len(offsets))
    if len(offsets) == 0:
        raise VarcasError(f"the schedule is empty: no request arrives before duration {duration_s} s; "
                          "give a longer duration or a higher rate")
    n = len(offsets) * shape.turns
    users = _lengths(input_len, range_ratio[0], trace_in, workload.input, input_ss, n)
    outputs = _lengths(output_len, range_ratio[1], trace_out, workload.output, output_ss, n)
    if shape.plain:
        return Schedule(offset_ns=offsets, input_len=users, output_len=outputs)
    followers = np.full(n - len(offsets), -1, dtype=np.int64)
    return Schedule(offset_ns=np.concatenate([offsets, followers]), input_len=prompt_lengths(users, outputs, shape),
                    output_len=outputs, shape=shape, user_len=users,
                    think_ns=think_times(shape, n, np.random.default_rng(think_ss)) if shape.turns > 1 else None)


def _read_trace(path: str | None, trace_format: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A trace's (offsets, input, output): varcas's trace file, or BurstGPT's timestamps less the first."""
    if trace_format == "varcas":
        return read_trace(path or "")
    times, inputs, outputs = read_burstgpt(path or "")
    order = np.argsort(times, kind="stable")
    times = times[order]
    return np.rint((times - times[0]) * 1e9).astype(np.int64), inputs[order], outputs[order]


def _offsets(workload: Workload, rps: float | None, arrival: str, burstiness: float, duration_s: float | None,
             num_requests: int | None, ramp: tuple[str, float, float] | None,
             rng: np.random.Generator) -> np.ndarray:
    """The drawn offsets: all at 0 for an infinite rate, a ramp-up's, or the arrival process's."""
    process = ARRIVALS[arrival]
    if rps == math.inf or ramp is not None:
        assert num_requests is not None  # _validate: an infinite rate and a ramp-up need a count
        if rps == math.inf:
            return np.zeros(num_requests, dtype=np.int64)
        assert ramp is not None and process.gaps is not None  # a ramp draws gaps: not a trace
        return ramp_offsets(process.gaps, ramp_rates(*ramp, num_requests), burstiness, duration_s, rng)
    assert process.offsets is not None  # a trace's offsets come from its file, not here
    rate = workload.rps if rps is None else float(rps)
    return process.offsets(rate, burstiness, duration_s, num_requests, rng)


def _lengths(fixed: int | None, ratio: float, from_trace: np.ndarray | None, dist: LengthDist,
             ss: np.random.SeedSequence, n: int) -> np.ndarray:
    """A fixed override wins (spread by the range ratio), then the trace's lengths, then the
    workload's distribution."""
    if fixed is not None and ratio:
        low, high = max(math.floor(fixed * (1 - ratio)), 1), min(math.ceil(fixed * (1 + ratio)), INT32_MAX)
        dist = LengthDist(kind="uniform", low=low, high=high)
    elif fixed is not None:
        return np.full(n, fixed, dtype=np.int32)
    elif from_trace is not None:
        return from_trace
    return dist.sample(np.random.default_rng(ss), n)


def _bad_real(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)


def _validate(*, workload: Workload, rps: float | None, arrival: str, burstiness: float,
              duration_s: float | None, num_requests: int | None, input_len: int | None,
              output_len: int | None, seed: int, trace_path: str | None,
              ramp: tuple[str, float, float] | None, shape: Shape, range_ratio: tuple[float, float],
              trace_format: str) -> None:
    """Raise a one-line VarcasError for the first bad argument."""
    _validate_shape(shape, range_ratio, input_len, output_len, arrival, trace_format)
    if arrival not in ARRIVALS:
        raise VarcasError(f"unknown arrival process {arrival!r}; choose one of {', '.join(ARRIVALS)}")
    if rps is not None and rps != math.inf and (_bad_real(rps) or rps <= 0):
        raise VarcasError(f"rps must be a number > 0 or inf, got {rps!r}")
    if rps == math.inf and num_requests is None:
        raise VarcasError("rps inf sends every request at once: give a number of requests (--num-requests)")
    if ramp is not None:
        _validate_ramp(ramp, rps, arrival, num_requests)
    if _bad_real(burstiness) or burstiness <= 0:
        raise VarcasError(f"burstiness must be a finite number > 0, got {burstiness!r}")
    if burstiness != 1.0 and arrival != "gamma":
        raise VarcasError(f"burstiness applies only to the gamma arrival process, not {arrival!r}")
    if duration_s is not None and (_bad_real(duration_s) or not 0 < duration_s <= MAX_OFFSET_S):
        raise VarcasError(f"duration must be a number of seconds in (0, {MAX_OFFSET_S:g}], "
                          f"got {duration_s!r}")
    if num_requests is not None and (not _is_int(num_requests) or not 1 <= num_requests <= MAX_REQUESTS):
        raise VarcasError(f"num_requests must be an integer in [1, {MAX_REQUESTS}], got {num_requests!r}")
    for name, value in (("input_len", input_len), ("output_len", output_len)):
        if value is not None and (not _is_int(value) or not 1 <= value <= INT32_MAX):
            raise VarcasError(f"{name} must be an integer in [1, {INT32_MAX}], got {value!r}")
    if not _is_int(seed) or seed < 0:
        raise VarcasError(f"seed must be an integer >= 0, got {seed!r}")
    if arrival == "trace":
        if not trace_path:
            raise VarcasError("arrival 'trace' needs a trace file path")
        if rps is not None:
            raise VarcasError("rps does not apply to a trace: its offsets set the rate")
        return
    if trace_path and trace_format == "varcas":
        raise VarcasError(f"a trace file was given but the arrival process is {arrival!r}; "
                          "use arrival 'trace'")
    if duration_s is None and num_requests is None:
        raise VarcasError("give a duration, a number of requests, or both")
    rate = (workload.rps if rps is None else rps) * shape.turns
    if num_requests is None and duration_s is not None and rate * duration_s > MAX_REQUESTS:
        raise VarcasError(f"rps {rate} for {duration_s} s is ~{rate * duration_s:.3g} requests; "
                          f"the limit is {MAX_REQUESTS}")


def _validate_shape(shape: Shape, range_ratio: tuple[float, float], input_len: int | None,
                    output_len: int | None, arrival: str, trace_format: str) -> None:
    """The range ratio spreads a fixed length, in [0, 1) as vLLM's; conversations need arrivals."""
    if trace_format not in TRACE_FORMATS:
        raise VarcasError(f"unknown trace format {trace_format!r}; choose one of {', '.join(TRACE_FORMATS)}")
    for ratio in range_ratio:
        if _bad_real(ratio) or not 0 <= ratio < 1:
            raise VarcasError(f"the range ratio must be in [0, 1), as vLLM's, got {ratio!r}")
    if any(range_ratio) and input_len is None and output_len is None:
        raise VarcasError("a range ratio spreads a fixed length: give --random-input-len or --random-output-len")
    if shape.turns > 1 and arrival == TRACE:
        raise VarcasError("conversations start on an arrival process, not on a trace's rows")


def _validate_ramp(ramp: tuple, rps: float | None, arrival: str, num_requests: int | None) -> None:
    """A ramp-up: a known strategy, 0 < start <= end, no rps of its own, a count to span, a gap law."""
    strategy, start, end = ramp
    if strategy not in RAMPS:
        raise VarcasError(f"unknown ramp-up strategy {strategy!r}; choose one of {', '.join(RAMPS)}")
    if _bad_real(start) or _bad_real(end) or not 0 < start <= end:
        raise VarcasError(f"a ramp-up needs 0 < start rps <= end rps, got {start!r} and {end!r}")
    if rps is not None:
        raise VarcasError("a ramp-up sets the rate itself: give no rps (--request-rate) with it")
    if num_requests is None:
        raise VarcasError("a ramp-up climbs over a number of requests: give it (--num-requests)")
    if ARRIVALS[arrival].gaps is None:
        raise VarcasError(f"a ramp-up draws poisson or gamma gaps, not {arrival!r} arrivals")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _trace_cut(offsets: np.ndarray, duration_s: float | None, num_requests: int | None) -> int:
    """How many of a trace's (sorted) requests fall inside the duration and count limits."""
    keep = len(offsets)
    if duration_s is not None:
        keep = int(np.searchsorted(offsets, duration_s * 1e9, side="left"))
    if num_requests is not None:
        keep = min(keep, num_requests)
    return keep


def read_trace(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a trace file: (offset_ns int64 sorted, input_tokens int32, output_tokens int32).

    Formats: JSON Lines, one {"offset_s": .., "input_tokens": .., "output_tokens": ..} per
    line (suffix .jsonl or .json), or CSV with a header naming those three columns (suffix
    .csv); any other suffix is sniffed: a first non-blank '{' means JSON Lines. Extra keys or
    columns are ignored; blank lines are skipped. offset_s is seconds from the run's start
    (>= 0); token counts are integers >= 1. Rows out of order are sorted by offset (stably,
    so equal offsets keep file order). A bad row raises VarcasError naming file and line.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(_trace_rows(f, path))
    except (OSError, UnicodeDecodeError) as e:
        raise VarcasError(f"cannot read trace file {path}: {e}") from None
    if not rows:
        raise VarcasError(f"trace file {path} has no requests")
    offsets_s = np.array([r[0] for r in rows], dtype=np.float64)
    offsets = np.rint(offsets_s * 1e9).astype(np.int64)
    input_len = np.array([r[1] for r in rows], dtype=np.int32)
    output_len = np.array([r[2] for r in rows], dtype=np.int32)
    if np.any(np.diff(offsets) < 0):
        order = np.argsort(offsets, kind="stable")
        offsets, input_len, output_len = offsets[order], input_len[order], output_len[order]
    return offsets, input_len, output_len


def _trace_rows(f: Any, path: Path) -> Iterator[tuple[float, int, int]]:
    """Validated (offset_s, input_tokens, output_tokens) rows of an open trace file."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return _jsonl_rows(f, path)
    if suffix == ".csv":
        return _csv_rows(f, path)
    head = f.read(4096).lstrip()
    f.seek(0)
    return _jsonl_rows(f, path) if head.startswith("{") else _csv_rows(f, path)


def _jsonl_rows(f: Any, path: Path) -> Iterator[tuple[float, int, int]]:
    for lineno, obj in jsonl_objects(f, f"trace file {path}"):
        if not isinstance(obj, dict):
            raise VarcasError(f"trace file {path} line {lineno}: expected a JSON object")
        for key in TRACE_FIELDS:
            if key not in obj:
                raise VarcasError(f"trace file {path} line {lineno}: missing {key!r}")
        yield _trace_row(path, lineno, *(obj[k] for k in TRACE_FIELDS))


def _csv_rows(f: Any, path: Path) -> Iterator[tuple[float, int, int]]:
    if not any(line.strip() for line in f):  # nothing but blank lines: no rows (read_trace says so)
        return
    f.seek(0)
    cols, rows = csv_columns(f, f"trace file {path}", TRACE_FIELDS)
    for line, row in rows:
        offset, inp, out = (row[c].strip() for c in cols)
        yield _trace_row(path, line, _parse(float, offset), _parse(int, inp), _parse(int, out))


def _parse(kind: type, text: str) -> Any:
    """text as int/float, or the text itself so _trace_row reports it as the bad value."""
    try:
        return kind(text)
    except ValueError:
        return text


def _trace_row(path: Path, lineno: int, offset: Any, inp: Any, out: Any) -> tuple[float, int, int]:
    if _bad_real(offset) or not 0 <= offset <= MAX_OFFSET_S:
        raise VarcasError(f"trace file {path} line {lineno}: offset_s must be a number in "
                          f"[0, {MAX_OFFSET_S:g}], got {offset!r}")
    for name, value in (("input_tokens", inp), ("output_tokens", out)):
        if not _is_int(value) or not 1 <= value <= INT32_MAX:
            raise VarcasError(f"trace file {path} line {lineno}: {name} must be an integer in "
                              f"[1, {INT32_MAX}], got {value!r}")
    return float(offset), inp, out
