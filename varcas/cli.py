"""`varcas <command>`: each command is a thin layer over a library function.

A command module exposes build_parser(prog) -> argparse.ArgumentParser and run(args) -> int;
varcas.clikit.run_command runs it (one-line errors, exit codes)."""
from __future__ import annotations

import sys

from .clikit import run_command

COMMANDS = {
    "load": ("varcas.targets.load_cli", "run an open-loop load test against a server"),
    "recover": ("varcas.load.recover_cli", "rebuild requests.parquet of a run whose process died"),
    "analyze": ("varcas.analyze.cli", "latency/throughput statistics and a trust verdict for runs"),
    "roofline": ("varcas.roofline.cli", "static roofline model of prefill and decode on a GPU"),
    "calibrate": ("varcas.calibrate.cli", "fit the roofline's efficiencies and per-step overhead to measured runs"),
    "sim": ("varcas.targets.sim_cli", "simulated vLLM server on the roofline model (served, or offline in virtual time)"),
    "optimize": ("varcas.optimize.cli", "sweep server settings (e.g. --max-num-seqs) over workloads; compare, recommend"),
    "sweep-rate": ("varcas.optimize.capacity_cli", "find the highest request rate that meets the SLOs (capacity)"),
    "report": ("varcas.report.cli", "self-contained HTML report and Markdown summary of a run, sweep or pipeline"),
    "pipeline": ("varcas.pipeline", "roofline, load tests, batch sweep and report in one directory"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: varcas <command> [options]\n\ncommands:")
        for name, (_, helptext) in COMMANDS.items():
            print(f"  {name:<10} {helptext}")
        return 0 if argv else 2
    name = argv[0]
    if name not in COMMANDS:
        print(f"varcas: error: unknown command {name!r} (known: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    return run_command(COMMANDS[name][0], f"varcas {name}", argv[1:])


if __name__ == "__main__":
    sys.exit(main())
