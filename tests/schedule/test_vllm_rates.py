"""vLLM's rates in the schedule: --request-rate inf (all at once) and --ramp-up-strategy (a rate
per request, vllm/benchmarks/serve.py _get_current_request_rate), exact for a seed."""
import numpy as np
import pytest

from varcas.errors import VarcasError
from varcas.schedule import build_schedule, load_workload
from varcas.schedule.arrivals import ARRIVALS, ramp_rates

WORKLOAD = load_workload("chat_medium")


def sched(**kw):
    return build_schedule(workload=WORKLOAD, **{"rps": None, "seed": 7, **kw})


def arrival_rng(seed):
    """The arrival stream build_schedule draws from (the first of three spawned streams)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[0])


def test_the_ramp_rates_are_vllms():
    assert ramp_rates("linear", 2.0, 10.0, 5).tolist() == [2, 4, 6, 8, 10]
    assert ramp_rates("exponential", 1.0, 16.0, 5).tolist() == [1, 2, 4, 8, 16]
    assert ramp_rates("linear", 3.0, 9.0, 1).tolist() == [3]  # progress i / max(n - 1, 1)
    n = 7
    for i, rate in enumerate(ramp_rates("exponential", 1.5, 20.0, n)):
        assert rate == 1.5 * (20.0 / 1.5) ** (i / (n - 1))  # vLLM's Python float formula, bit for bit


@pytest.mark.parametrize("arrival, burstiness", [("poisson", 1.0), ("gamma", 0.5), ("gamma", 3.0)])
@pytest.mark.parametrize("strategy", ["linear", "exponential"])
def test_a_ramp_draws_each_gap_at_its_requests_rate(arrival, burstiness, strategy):
    got = sched(arrival=arrival, burstiness=burstiness, num_requests=50, ramp=(strategy, 2.0, 40.0))
    rng, gaps = arrival_rng(7), []
    for rate in ramp_rates(strategy, 2.0, 40.0, 50):  # one draw per request, as vLLM's loop does
        gaps.append(rng.exponential(1 / rate) if arrival == "poisson"
                    else rng.gamma(burstiness, 1 / (rate * burstiness)))
    assert np.array_equal(got.offset_ns, np.rint(np.cumsum(gaps) * 1e9).astype(np.int64))
    assert got.offset_ns[0] > 0  # the first request waits its gap, as in vLLM


def test_a_ramp_at_one_rate_is_the_plain_schedule():
    plain = sched(rps=8.0, arrival="gamma", burstiness=2.0, num_requests=200)
    ramp = sched(arrival="gamma", burstiness=2.0, num_requests=200, ramp=("linear", 8.0, 8.0))
    assert np.array_equal(plain.offset_ns, ramp.offset_ns)


def test_a_ramp_speeds_up_and_is_cut_by_the_duration():
    full = sched(num_requests=2000, ramp=("linear", 1.0, 100.0))
    gaps = np.diff(full.offset_ns)
    assert gaps[:200].mean() > 10 * gaps[-200:].mean()
    cut = sched(num_requests=2000, ramp=("linear", 1.0, 100.0), duration_s=30.0)
    assert 0 < len(cut) < 2000 and np.array_equal(cut.offset_ns, full.offset_ns[:len(cut)])
    assert np.array_equal(cut.input_len, full.input_len[:len(cut)])


def test_an_infinite_rate_sends_every_request_at_zero():
    got = sched(rps=float("inf"), num_requests=25, arrival="gamma", burstiness=0.3)
    assert got.offset_ns.tolist() == [0] * 25
    finite = sched(rps=5.0, num_requests=25)
    assert np.array_equal(got.input_len, finite.input_len)  # lengths come from their own streams


def test_only_poisson_and_gamma_have_a_gap_law():
    assert [name for name, a in ARRIVALS.items() if a.gaps is not None] == ["poisson", "gamma"]


@pytest.mark.parametrize("kwargs, message", [
    ({"rps": float("inf"), "duration_s": 5.0, "num_requests": None}, "rps inf sends every request at once: give a number of requests"),
    ({"ramp": ("linear", 1.0, 5.0), "rps": 3.0}, "a ramp-up sets the rate itself"),
    ({"ramp": ("linear", 1.0, 5.0), "rps": float("inf")}, "a ramp-up sets the rate itself"),
    ({"ramp": ("linear", 1.0, 5.0), "duration_s": 5.0, "num_requests": None}, "a ramp-up climbs over a number"),
    ({"ramp": ("linear", 5.0, 1.0)}, "a ramp-up needs 0 < start rps <= end rps"),
    ({"ramp": ("linear", 0.0, 1.0)}, "a ramp-up needs 0 < start rps <= end rps"),
    ({"ramp": ("cubic", 1.0, 2.0)}, "unknown ramp-up strategy 'cubic'"),
    ({"ramp": ("linear", 1.0, 2.0), "arrival": "constant"}, "draws poisson or gamma gaps, not 'constant'"),
])
def test_bad_rates_are_one_line_errors(kwargs, message):
    with pytest.raises(VarcasError, match=message) as e:
        sched(**{"num_requests": 10, **kwargs})
    assert "\n" not in str(e.value)
