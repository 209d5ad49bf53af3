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
