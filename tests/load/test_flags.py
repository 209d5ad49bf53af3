"""The load flags and arrival processes are declared once: every command that offers one takes
its spelling, type, choices and help from the table, and the arrival table drives the schedule."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from varcas.load.flags import LOAD_FLAGS, WORKLOAD
from varcas.load.runner import LoadConfig
from varcas.schedule import build_schedule, load_workload
from varcas.schedule.arrivals import ARRIVALS, arrival_help

COMMANDS = {  # module -> the load flags it offers
    "varcas.targets.load_cli": set(LOAD_FLAGS),
    "varcas.targets.sim_cli": {*WORKLOAD, "request_timeout_s", "out"},
    "varcas.optimize.cli": {"workload", "duration_s", "rps", "seed", "request_timeout_s", "drain_timeout_s",
                            "clip_to_context", "out", "quiet"},
    "varcas.optimize.capacity_cli": {"workload", "duration_s", "seed", "clip_to_context"},
    "varcas.pipeline": {"workload", "duration_s", "rps", "seed", "clip_to_context", "out", "quiet"},
}


def _actions(module: str) -> dict:
    parser = importlib.import_module(module).build_parser("x")
    return {tuple(a.option_strings): a for a in parser._actions if a.option_strings}


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_spells_its_load_flags_as_the_table(module):
    actions = _actions(module)
    for name in COMMANDS[module]:
        options, kwargs = LOAD_FLAGS[name]
        action = actions[options]
        assert action.dest == kwargs.get("dest", name), (module, name)
        assert action.type is kwargs.get("type"), (module, name)
        assert action.choices == kwargs.get("choices"), (module, name)


def test_every_table_flag_fills_a_load_config_field():
    fields = set(LoadConfig.__dataclass_fields__)
    assert {kwargs.get("dest", name) for name, (_, kwargs) in LOAD_FLAGS.items()} <= fields


def test_the_arrival_choices_and_help_are_the_table():
    options, kwargs = LOAD_FLAGS["arrival"]
    assert kwargs["choices"] == tuple(ARRIVALS) == ("poisson", "gamma", "constant", "trace")
    assert all(f"{name}: {a.help}" in arrival_help() for name, a in ARRIVALS.items())
    for module in ("varcas.targets.load_cli", "varcas.targets.sim_cli"):
        assert _actions(module)[options].choices == tuple(ARRIVALS)


@pytest.mark.parametrize("name", [n for n, a in ARRIVALS.items() if a.offsets is not None])
def test_the_schedule_draws_from_the_table(name):
    """build_schedule's offsets are exactly the table's function's for the same RNG stream."""
    sched = build_schedule(workload=load_workload("chat_medium"), rps=20.0, arrival=name, duration_s=5.0, seed=3)
    rng = np.random.default_rng(np.random.SeedSequence(3).spawn(3)[0])
    assert np.array_equal(sched.offset_ns, ARRIVALS[name].offsets(20.0, 1.0, 5.0, None, rng))
