"""Run a `varcas` command in this process and capture what it printed."""
from varcas.cli import main


def cli(capsys, *args):
    """(exit status, stdout, stderr) of `varcas *args`; argparse's SystemExit counts as an exit."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse rejects a flag: one line, exit 2
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


# The seed's worked example (llama-2-7b AWQ on a T4), which tests pin where they were written for
# its limits: the simulator's default target is a larger one (varcas.sim.config).
T4 = {"model": "llama-2-7b", "gpu": "t4", "quant": "awq"}
T4_FLAGS = ("--model", "llama-2-7b", "--gpu", "t4", "--quant", "awq")
T4_SIM_FLAGS = ("--sim-model", "llama-2-7b", "--sim-gpu", "t4", "--sim-quant", "awq")
