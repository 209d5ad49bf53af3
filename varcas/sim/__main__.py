"""`python -m varcas.sim`: the same command as `varcas sim`."""
import sys

from ..clikit import run_command

sys.exit(run_command("varcas.targets.sim_cli", "python -m varcas.sim", sys.argv[1:]))
