"""`python -m varcas.sim`: the same command as `varcas sim`."""
import sys

from ..cli import run_command

sys.exit(run_command("varcas.sim.cli", "python -m varcas.sim", sys.argv[1:]))
