"""`python -m varcas.load`: the same command as `varcas load`."""
import sys

from ..cli import run_command

sys.exit(run_command("varcas.load.cli", "python -m varcas.load", sys.argv[1:]))
