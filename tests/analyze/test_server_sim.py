"""End to end on the simulator: a short load run scrapes its /metrics, and analyze puts the server's
own TTFT and ITL beside the client's, the client's never below the server's by more than the
tolerance (the client's clock starts before the request reaches the server and stops after the
token leaves it), and a timeline on the client's seconds."""
from __future__ import annotations

import numpy as np

from varcas.analyze import load_run, summarize
from varcas.load.runner import LoadConfig
from varcas.targets import run_load

TOLERANCE_MS = 1.0


def test_the_simulators_own_latency_sits_below_the_clients(tmp_path):
    out = tmp_path / "r"
    run_load(LoadConfig(rps=8, duration_s=3, sim={"gpu": "h100-sxm", "quant": "fp16"}, out=str(out), quiet=True,
                        workload="chat_low", metrics_interval_s=0.25))
    s = summarize(load_run(out))
    for name, unit in (("server_ttft", "ms"), ("server_itl", "ms")):
        got = s.server[name]
        assert got["observations"] > 0 and got[f"mean_{unit}"] > 0, name
        assert got[f"gap_mean_{unit}"] >= -TOLERANCE_MS, (name, got)
        assert got[f"client_mean_{unit}"] == (s.steady or s.whole).latency[name.removeprefix("server_")].mean
    assert s.server["server_ttft"]["name"] == "vllm:time_to_first_token_seconds"
    assert s.server["server_itl"]["name"] == "vllm:time_per_output_token_seconds"  # the simulator's (older) name
    tl = s.server_timeline
    assert tl.t_s.size == s.timeline.t_s.size
    assert np.nanmax(tl.series["running"]) >= 1 and np.nansum(tl.series["generation_tokens"]) > 0
