"""Arrival processes, one table: name -> how its offsets are drawn. Every CLI that offers
--arrival reads its choices and help from ARRIVALS, and build_schedule draws from it.

Rates in requests/s, offsets in int64 ns from the run's start:
  poisson   exponential gaps of mean 1/rps.
  gamma     gamma gaps, shape = burstiness, scale = 1/(rps*burstiness): vLLM's benchmark
            definition (vllm/benchmarks/serve.py). Mean gap 1/rps for any burstiness;
            burstiness < 1 is burstier than Poisson, > 1 smoother, == 1 is Poisson in law.
  constant  offset of request i is exactly i/rps (rounded to the ns); the first is at 0.
  trace     offsets and lengths replayed from a file (build.read_trace): no draw here.

Ramp-ups, the second table (vLLM's --ramp-up-strategy, vllm/benchmarks/serve.py
_get_current_request_rate): request i of n gets the rate
  linear       start + (end - start) * i / max(n - 1, 1)
  exponential  start * (end / start) ** (i / max(n - 1, 1))
and its gap before it is drawn at that rate by the arrival process's gap law (poisson or
gamma, whose `gaps` take a per-request rate array); offsets are the gaps' running sum, with
no rescaling, as in vLLM.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np

from ..errors import VarcasError

# A schedule of 100M requests already holds 1.6 GB of arrays; beyond that is a typo.
MAX_REQUESTS = 100_000_000
# Offsets are int64 ns (overflow past ~292 years); 1e9 s (~31.7 years) is ample headroom.
MAX_OFFSET_S = 1e9
TRACE = "trace"

# offsets(rps, burstiness, duration_s, num_requests, rng) -> sorted int64 ns
Offsets = Callable[[float, float, Optional[float], Optional[int], np.random.Generator], np.ndarray]
# gaps(rate: a float or one per request, burstiness, rng, k) -> k gaps in seconds
Gaps = Callable[[Union[float, np.ndarray], float, np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class Arrival:
    """An arrival process: its help line, how its offsets are drawn (None for a trace, whose
    offsets come from its file) and, for a renewal process, its gap law (what a ramp-up draws)."""

    name: str
    help: str
    offsets: Offsets | None
    gaps: Gaps | None = None


def _constant(rps: float, burstiness: float, duration_s: float | None, num_requests: int | None,
              rng: np.random.Generator) -> np.ndarray:
    # Computed from i directly, not summed, so offset i is exactly round(i/rps in ns).
    limit_ns = math.inf if duration_s is None else duration_s * 1e9
    if duration_s is None:
        assert num_requests is not None  # build._validate: a duration, a count, or both
        n = num_requests
    else:
        n = math.ceil(duration_s * rps) + 1 if num_requests is None else min(math.ceil(duration_s * rps) + 1,
                                                                             num_requests)
    return _to_ns(np.arange(n, dtype=np.float64) / rps, limit_ns)[0]


def _exponential_gaps(rate, burstiness: float, rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.exponential(1.0 / rate, k)


def _gamma_gaps(rate, burstiness: float, rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.gamma(burstiness, 1.0 / (rate * burstiness), k)


def _renewal(gaps: Gaps) -> Offsets:
    """The offsets of a process whose gaps at a constant rate follow `gaps`."""
    def offsets(rps: float, burstiness: float, duration_s: float | None, num_requests: int | None,
                rng: np.random.Generator) -> np.ndarray:
        return _accumulate_gaps(lambda k: gaps(rps, burstiness, rng, k), rps, duration_s, num_requests)
    return offsets


ARRIVALS = {a.name: a for a in (
    Arrival("poisson", "exponential gaps of mean 1/rate (the default)", _renewal(_exponential_gaps),
            _exponential_gaps),
    Arrival("gamma", "gamma gaps of shape --burstiness and mean 1/rate (vLLM's; 1.0 = Poisson)",
            _renewal(_gamma_gaps), _gamma_gaps),
    Arrival("constant", "request i at exactly i/rate", _constant),
    Arrival(TRACE, "offsets and lengths replayed from --trace", None),
)}

# strategy -> rate of each request from (start, end, progress i / max(n - 1, 1))
RAMPS: dict[str, Callable[[float, float, np.ndarray], np.ndarray]] = {
    "linear": lambda start, end, progress: start + (end - start) * progress,
    "exponential": lambda start, end, progress: start * (end / start) ** progress,
}


def arrival_help() -> str:
    """The --arrival help text, from the table."""
    return ("arrival process (default poisson, or gamma when --burstiness is not 1): "
            + "; ".join(f"{a.name}: {a.help}" for a in ARRIVALS.values()))


def ramp_rates(strategy: str, start_rps: float, end_rps: float, n: int) -> np.ndarray:
    """The rate (requests/s) of each of n requests under a ramp-up, as vLLM computes it."""
    return RAMPS[strategy](start_rps, end_rps, np.arange(n) / max(n - 1, 1))


def ramp_offsets(gaps: Gaps, rates: np.ndarray, burstiness: float, duration_s: float | None,
                 rng: np.random.Generator) -> np.ndarray:
    """Offsets (int64 ns) of requests whose gaps are drawn at their own rates, cut at duration_s."""
    limit_ns = math.inf if duration_s is None else duration_s * 1e9
    return _to_ns(np.cumsum(gaps(rates, burstiness, rng, rates.size)), limit_ns)[0]


def _accumulate_gaps(draw: Callable[[int], np.ndarray], rps: float, duration_s: float | None,
                     num_requests: int | None) -> np.ndarray:
    """Sum random gaps (seconds) into ns offsets, a vectorised block at a time, until the
    count is reached or an offset reaches limit_ns. Block sizes follow the expected count
    still needed; blocks do not change the result, because draws and sums are sequential."""
    limit_ns = math.inf if duration_s is None else duration_s * 1e9
    blocks: list[np.ndarray] = []
    total = 0
    last_s = 0.0
    while num_requests is None or total < num_requests:
        if math.isinf(limit_ns):
            assert num_requests is not None  # no duration: the count bounds the loop
            k = num_requests - total
        else:
            expected = max(rps * (limit_ns / 1e9 - last_s), 0.0)
            k = int(expected * 1.05 + 6.0 * math.sqrt(expected) + 64)
            k = min(k, MAX_REQUESTS + 1 - total)
            if num_requests is not None:
                k = min(k, num_requests - total)
        # Prepending the running total keeps the float summation order identical to one
        # cumsum over all gaps, so the result is independent of where blocks start.
        t_s = np.cumsum(np.concatenate(([last_s], draw(k))))[1:]
        last_s = float(t_s[-1])
        offsets, cut = _to_ns(t_s, limit_ns)
        blocks.append(offsets)
        total += cut
        if cut < k:
            break
        if total > MAX_REQUESTS:
            raise VarcasError(f"the schedule exceeds {MAX_REQUESTS} requests; lower the rate or duration")
    return np.concatenate(blocks) if blocks else np.empty(0, dtype=np.int64)


def _to_ns(t_s: np.ndarray, limit_ns: float) -> tuple[np.ndarray, int]:
    """Sorted offsets in seconds -> (int64 ns of those whose rounded ns < limit_ns, count).
    Raises VarcasError rather than let an offset past MAX_OFFSET_S overflow int64."""
    ns = np.rint(t_s * 1e9)
    cut = int(np.searchsorted(ns, limit_ns, side="left"))
    if cut and not ns[cut - 1] <= MAX_OFFSET_S * 1e9:
        raise VarcasError(f"the schedule spans more than {MAX_OFFSET_S:g} s; "
                          "raise the rate or lower the count")
    return ns[:cut].astype(np.int64), cut
