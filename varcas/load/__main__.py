"""`python -m varcas.load`: the same command as `varcas load`."""
import sys

from ..clikit import run_command

sys.exit(run_command("varcas.targets.load_cli", "python -m varcas.load", sys.argv[1:]))
