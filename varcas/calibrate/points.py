"""Measured step times from runs: what `varcas calibrate` fits the roofline's efficiencies to.

Each run gives points of two kinds, read from its request rows (read-only; nothing is written
into the inputs):

  decode   one per batch size b seen in the run. Every inter-token gap (ITL sample) ends at a
           decode step at time t; its batch is the requests between their first and last token
           then (first < t <= last), its context the batch's mean of prompt plus tokens received
           so far minus one (the k-th decode step of a prompt of S tokens attends to S + k keys,
           as the simulator counts it). Gaps are grouped by batch: the point is the group's
           median gap at the group's median context: at one batch a step's time grows with its
           context, so the two medians belong together (a mean context would not: mixed prompt
           lengths skew it). The median gap, not the mean or the per-request TPOT, because a gap
           that also spans a prefill step (vLLM V0 runs an admitted prompt in a step of its own)
           is an outlier the median ignores and TPOT averages in.
           Why not the digest's figures: the server's mean running batch is a time average
           (idle and ramp time included) and the pooled ITL median belongs to the token-weighted
           batch; pairing each gap with its own batch removes both biases.
  prefill  one per run, from requests that arrived at an idle server: none of the client's other
           requests was in flight when it was sent, so its first token ends one prefill step of
           its prompt. The step is timed from the response's first byte where the server started
           its response in the first half of the TTFT (vLLM and the simulator send their headers
           once the request is queued), else from the send: the network, parsing and tokenizing
           of the request are not step time (about 1 ms on loopback: 4% of a 512-token prefill on
           an H100). The point is the median of these times at the median prompt length: an idle
           arrival's time grows with its prompt, so the two medians belong together.

Weights (the fit's sigma): the median's standard error, (q60 - q40) / (0.4 sqrt(n)) (1 / (2 f sqrt(n))
with the density f at the median read off the middle 20% of the samples; n counts steps, not
tokens, for decode: the b gaps of one step are one measurement), combined with a model floor of
MODEL_FLOOR of the step time: no step is predicted better than that, and a deterministic
simulator's zero spread must not give one point infinite weight.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import rundir
from ..analyze.metrics import request_metrics
from ..analyze.run import NO_TIME, load_run
from ..errors import VarcasError
from ..results import files, sweepdir

MIN_STEPS = 5  # decode steps a batch size needs to be a point
MIN_IDLE = 3  # idle arrivals a run needs for a prefill point
MODEL_FLOOR = 0.02  # relative error of any predicted step: the weights' floor
PIPELINE_SWEEPS = ("load", "sweep")  # a pipeline directory's sweeps (varcas.pipeline)


@dataclass(frozen=True)
class Point:
    """One measured step time: a decode step of `batch` sequences at mean context `length`, or
    the prefill of one prompt of `length` tokens (batch 1)."""

    run: str  # the run directory
    kind: str  # "decode" or "prefill"
    batch: int
    length: float  # decode: mean context (tokens attended); prefill: prompt tokens
    observed_s: float  # median ITL (decode) or median prefill time of idle arrivals (prefill)
    sigma_s: float  # its standard error with the model floor: the fit weighs it 1 / sigma^2
    samples: int  # gaps (decode) or requests (prefill) behind it


def run_dirs(paths) -> list[Path]:
    """The run directories of the inputs: a run, a sweep (every complete run of every
    configuration) or a pipeline directory (its load tests and batch sweep)."""
    out: list[Path] = []
    for given in map(Path, paths):
        if files.exists(given, files.PIPELINE):
            sweeps = [given / name for name in PIPELINE_SWEEPS if sweepdir.is_sweep(given / name)]
            out += [run for s in sweeps for run in _sweep_runs(s)]
        elif sweepdir.is_sweep(given):
            out += _sweep_runs(given)
        elif given.is_dir() and any((given / name).is_file() for name in (rundir.MANIFEST, rundir.PARQUET)):
            out.append(given)
        else:
            raise VarcasError(f"{given}: not a run, sweep or pipeline directory")
    return out


def _sweep_runs(sweep: Path) -> list[Path]:
    return [run for entry in sweepdir.entries(sweep) for run in entry["runs"].values()]


def points(run_dir: Path) -> tuple[list[Point], dict]:
    """The decode and prefill points of one run, and its manifest."""
    run = load_run(run_dir)
    rm = request_metrics(run)
    found = _decode_points(run, rm) + _prefill_points(run, rm)
    return found, run.manifest


def _decode_points(run, rm) -> list[Point]:
    offsets = run.token_offsets
    owner = np.repeat(np.arange(run.n), np.diff(offsets))  # the request of each content event
    gap_end = np.flatnonzero(rm.measured[owner] & (np.arange(offsets[-1]) > offsets[owner]))
    if not gap_end.size:
        return []
    t = run.token_ns[gap_end]
    gaps = (t - run.token_ns[gap_end - 1]).astype(np.float64)
    batch, context = _steps(run, rm, t)
    out = []
    for b in np.unique(batch[batch >= 1]):
        chosen = batch == b
        n = int(chosen.sum())
        if n // b >= MIN_STEPS:
            median, sigma = _median(gaps[chosen], n // b)
            out.append(Point(str(run.path), "decode", int(b), float(np.median(context[chosen])), median, sigma, n))
    return out


def _steps(run, rm, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decode steps ending at times t: their batch (requests with first < t <= last; failed
    ones with tokens too) and mean context, from sorted first and last token times and running sums."""
    offsets = run.token_offsets
    streamed = np.diff(offsets) > 0
    first, last = run.token_ns[offsets[:-1][streamed]], run.token_ns[offsets[1:][streamed] - 1]
    by_first, by_last = np.argsort(first, kind="stable"), np.argsort(last, kind="stable")
    started = np.searchsorted(first[by_first], t, "left")  # first < t
    ended = np.searchsorted(last[by_last], t, "left")  # last < t: done before this step
    batch = started - ended
    prompts, tokens = rm.input_tokens[streamed], np.diff(offsets)[streamed]
    prompt_sum = _sums(prompts, by_first)[started] - _sums(prompts, by_last)[ended]
    # Tokens the batch has received by t: every event up to t, less those of requests done before
    # t, less the first tokens at t itself (their requests are not in the batch).
    beginning = np.searchsorted(first[by_first], t, "right") - started
    received = np.searchsorted(np.sort(run.token_ns), t, "right") - _sums(tokens, by_last)[ended] - beginning
    return batch, (prompt_sum + received - batch) / np.maximum(batch, 1)


def _sums(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Running sums of values in order, from 0: element i is the sum of the first i."""
    return np.concatenate([[0], np.cumsum(values[order])])


def _prefill_points(run, rm) -> list[Point]:
    sent = rm.sent
    starts = np.sort(run.sent_ns[sent])
    ends = np.sort(rm.departure_ns[sent])
    s = run.sent_ns
    in_flight = np.searchsorted(starts, s, "left") - np.searchsorted(ends, s, "right")
    idle = rm.measured & (in_flight == 0)
    if idle.sum() < MIN_IDLE:
        return []
    headers = run.first_byte_ns - run.sent_ns
    early = (run.first_byte_ns != NO_TIME) & (headers >= 0) & (2 * headers < rm.ttft_ns)
    step = rm.ttft_ns - np.where(early, headers, 0)
    median, sigma = _median(step[idle].astype(np.float64), int(idle.sum()))
    return [Point(str(run.path), "prefill", 1, float(np.median(rm.input_tokens[idle])), median, sigma,
                  int(idle.sum()))]


def _median(values_ns: np.ndarray, n: int) -> tuple[float, float]:
    """(median, its standard error with the model floor), in seconds."""
    q40, q50, q60 = np.percentile(values_ns, [40, 50, 60]) / 1e9
    error = (q60 - q40) / (0.4 * np.sqrt(n))
    return float(q50), float(np.hypot(error, MODEL_FLOOR * q50))
