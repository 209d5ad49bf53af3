"""`varcas pipeline`: the seed report's whole workflow in one command, into one directory.

    varcas pipeline --model llama-2-7b --gpu t4 --quant awq [--url URL | --server-cmd CMD | --offline] --out DIR

Steps, each recorded in DIR/pipeline.json with its status (a failed step is reported, the
others still run; rerunning the command skips what finished):
  1. roofline   static roofline of prefill and decode (DIR/roofline/roofline.json and .txt)
  2. load       a load test per workload against the server as it stands: a one-configuration
                sweep (DIR/load/, varcas optimize's layout: DIR/load/<config>/<workload>/); a
                started server (or the simulator) runs with vLLM's default --max-num-seqs
  3. sweep      the batch sweep, max_num_seqs over --batch-sizes (DIR/sweep/, varcas optimize's
                layout); needs a server varcas can restart: --server-cmd or the simulator
  4. capacity   the same configurations (the sweep's, else the load step's one), each at its own
                capacity under the SLOs (--goodput, else ttft:1000 tpot:100, for --attainment of
                requests): a capacity search per configuration and workload starting from what
                the sweep measured, its highest passing run kept (DIR/capacity/, a sweep directory
                whose runs sit at each configuration's capacity), so configurations are compared at
                rates they sustain. --capacity auto (default) runs it when the earlier steps left
                the interactive or balanced use case without a configuration (nothing kept up with
                the workload's rate); always; never
  5. report     DIR/report.html and DIR/REPORT.md
Without --url or --server-cmd the target is varcas's simulated vLLM server running the same
model, GPU and quantization, and every output says so. --calibration FILE (varcas calibrate's
fit) sets the efficiencies and per-step overhead of the roofline step and of the simulator.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console

from . import roofline, rundir
from .clikit import OneLineParser
from .errors import EXIT_INTERRUPTED, VarcasError
from .load.flags import SWEEP_CHANGES, add_load_flags
from .optimize.backend import BackendSpec, add_backend_flags, backend_spec
from .optimize.capacity import slo_text
from .optimize.render import print_comparison
from .optimize.sweep import CapacityPlan, SweepInterrupted, SweepSpec, run_sweep
from .results import compare, files, sweepdir
from .results.comparison import read_comparison
from .roofline.calibration import calibrated_hardware
from .schedule.workloads import load_workload

DEFAULT_BATCHES = "1,2,4,8,16,32"
CAPACITY_MODES = ("auto", "always", "never")
LATENCY_USE_CASES = ("interactive", "balanced")


def build_parser(prog: str) -> OneLineParser:
    p = OneLineParser(prog=prog, description="Static roofline, a load test per workload, the batch-size sweep "
                      "and the report, into one directory.")
    m = p.add_argument_group("what the server runs")
    m.add_argument("--model", required=True, help="model (shipped name or config.json path), e.g. llama-2-7b")
    m.add_argument("--gpu", required=True, help="GPU, e.g. t4")
    m.add_argument("--quant", default="auto", help="quantization, e.g. awq (default auto)")
    add_backend_flags(p)
    w = p.add_argument_group("workflow")
    add_load_flags(w, ("workload",), workload={"default": "chat_medium,chat_high",
                                               "help": "comma-separated workloads (default chat_medium,chat_high)"})
    w.add_argument("--batch-sizes", default=DEFAULT_BATCHES, help=f"max_num_seqs values to sweep (default {DEFAULT_BATCHES})")
    add_load_flags(w, ("duration_s", "rps", "seed", "clip_to_context", "workers", "out", "quiet"), **{**SWEEP_CHANGES, "out": {
        "required": True, "help": "pipeline directory (rerun the same command to resume)"}})
    w.add_argument("--goodput", nargs="+", metavar="KEY:MS", help="SLOs, e.g. ttft:1000 tpot:100 (default for the "
                   "capacity step and the interactive use case: ttft:1000 tpot:100)")
    w.add_argument("--capacity", choices=CAPACITY_MODES, default="auto",
                   help="compare configurations at their own capacity under the SLOs: auto (default: when no "
                   "configuration kept up with a workload's rate), always, never")
    w.add_argument("--attainment", type=float, default=0.99,
                   help="share of requests that must meet every SLO at a configuration's capacity (default 0.99)")
    w.add_argument("--ncu", metavar="FILE.csv", help="kernels measured by Nsight Compute (ncu --csv --page raw) "
                   "for the roofline step and the report's roofline chart (docs/roofline.md)")
    return p


def _check(args) -> tuple[BackendSpec, tuple, list]:
    if any(getattr(args, f"sim_{k}") is not None for k in ("model", "gpu", "quant")):
        raise VarcasError("pipeline: --model/--gpu/--quant say what the simulator runs; drop the --sim-* flags")
    m = roofline.model(args.model, args.quant)  # unknown model or quantization: one line, now
    calibrated_hardware(args.gpu, None, args.calibration, m)  # and an unknown GPU or a calibration of another
    if args.ncu:
        roofline.read_ncu(args.ncu)  # a bad kernel file: one line, before the directory exists
    spec = backend_spec(args, {"model": args.model, "gpu": args.gpu, "quant": args.quant}, own_roofline=True)
    spec.check(["max_num_seqs"] if not spec.url else [])  # the sweep fills {max_num_seqs}
    workloads = tuple(w.strip() for w in args.workload.split(",") if w.strip())
    names = [load_workload(w).name for w in workloads]
    if len(set(names)) != len(names):
        raise VarcasError(f"--workload: two workloads share a name ({', '.join(names)})")
    try:
        batches = sorted({int(b) for b in args.batch_sizes.split(",")})
    except ValueError:
        raise VarcasError(f"--batch-sizes: expected integers like 1,2,4,8, got {args.batch_sizes!r}") from None
    if not workloads or not batches or batches[0] < 1:
        raise VarcasError("pipeline: need at least one workload and batch sizes >= 1")
    if not 0 < args.attainment <= 1:
        raise VarcasError(f"--attainment must be in (0, 1], got {args.attainment:g}")
    return spec, workloads, batches


def run(args) -> int:
    console = Console(highlight=False)
    spec, workloads, batches = _check(args)
    out = Path(args.out)
    resumed = files.exists(out, files.PIPELINE)
    if not resumed and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise VarcasError(f"--out {out}: exists and is neither empty nor a pipeline directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VarcasError(f"--out {out}: cannot create ({exc.strerror})") from None
    state = files.read(out, files.PIPELINE) if resumed else {}
    state.update(model=args.model, gpu=args.gpu, quant=args.quant, target=_target_text(spec, args),
                 workloads=list(workloads), batch_sizes=batches, steps=state.get("steps", {}))
    def save() -> None:
        state["updated_at"] = datetime.now(timezone.utc).isoformat()
        files.write(out, files.PIPELINE, state)

    save()
    goodput = None
    if args.goodput:
        from .analyze.summary import check_goodput, parse_goodput

        goodput = check_goodput(parse_goodput(args.goodput))
    try:
        console.print(f"1/5 roofline: {args.model} ({args.quant}) on {args.gpu}")
        state["steps"]["roofline"] = _roofline(args, out / "roofline")
        save()
        console.print(f"2/5 load tests against {state['target']}")
        state["steps"]["load"] = _load(spec, args, workloads, goodput, out / "load", console)
        save()
        console.print(f"3/5 batch sweep, max_num_seqs in {batches}")
        state["steps"]["sweep"] = _sweep(spec, args, workloads, batches, goodput, out / "sweep", console)
        save()
        state["steps"]["capacity"] = _capacity(spec, args, workloads, batches, goodput, out, console)
        save()
    except (KeyboardInterrupt, SweepInterrupted):
        save()
        console.print(f"interrupted: what finished is kept in {out}; rerun the same command to resume", style="yellow")
        return EXIT_INTERRUPTED
    console.print("5/5 report")
    from .report import write_report

    html, md = write_report(out)
    state["steps"]["report"] = {"status": "complete", "html": html.name, "markdown": md.name}
    save()
    console.print(f"done: {html} and {md}")
    return 0


def _target_text(spec: BackendSpec, args) -> str:
    if spec.url:
        return f"the server at {spec.url}"
    if spec.server_cmd:
        return f"servers started with: {spec.server_cmd}"
    mode = "offline, in virtual time" if spec.offline else "served"
    return f"varcas's simulated vLLM server ({mode}): {args.model} {args.quant} on {args.gpu}, not a real GPU"


def _roofline(args, rdir: Path) -> dict:
    """The static roofline of the model and GPU (`varcas roofline`'s), with the --calibration's
    efficiencies and overhead and the --ncu kernels if any, its text and JSON kept."""
    m = roofline.model(args.model, args.quant)
    hw = calibrated_hardware(args.gpu, None, args.calibration, m)
    batches = sorted({int(b) for b in args.batch_sizes.split(",")})
    out = roofline.static(hw, m, batches, [128, 512], [512, 2048], ncu_csv=args.ncu)
    rdir.mkdir(exist_ok=True)
    rundir.write_json(rdir / "roofline.json", out.doc)
    (rdir / "roofline.txt").write_text("\n".join(out.lines) + "\n")
    return {"status": "complete", "json": "roofline/roofline.json", "text": "roofline/roofline.txt"}


def _sweep_spec(spec: BackendSpec, args, workloads, params: list, goodput, out: Path,
                capacity: CapacityPlan | None = None) -> SweepSpec:
    return SweepSpec(backend=spec, params=params, workloads=workloads, out=str(out), duration_s=args.duration_s,
                     rps=args.rps, seed=args.seed, goodput=goodput, quiet=args.quiet, clip_to_context=args.clip_to_context,
                     workers=args.workers, capacity=capacity,
                     roofline={"model": args.model, "gpu": args.gpu, "quant": args.quant})


def _load(spec: BackendSpec, args, workloads, goodput, ldir: Path, console) -> dict:
    """A load test per workload against one server: a one-configuration sweep (vLLM's default
    max_num_seqs where varcas starts the server; the server as it stands for --url)."""
    default = roofline.vllm_batch_defaults(roofline.gpu(args.gpu))[1]
    params = [] if spec.url else [("max_num_seqs", (str(default),))]
    sweep = _sweep_spec(spec, args, workloads, params, goodput, ldir)
    run_sweep(sweep, console, say=console.print)
    (cid, _), = sweep.configs
    state = sweepdir.read_config(ldir, cid)
    assert state is not None  # run_sweep returned: it wrote every configuration's config.json
    results = {}
    for name in sweep.names.values():
        status = state["runs"].get(name, state["status"])
        results[name] = {"status": status, "run": f"{ldir.name}/{cid}/{name}"}
        if status != "complete" and state.get("reason"):
            results[name]["reason"] = state["reason"]
    return results


def _sweep(spec: BackendSpec, args, workloads, batches, goodput, sdir: Path, console) -> dict:
    if spec.url:
        return {"status": "skipped", "reason": "a server at --url cannot be restarted with other --max-num-seqs; "
                "pass --server-cmd (or no target: the simulator) to sweep batch sizes"}
    run_sweep(_sweep_spec(spec, args, workloads, _batch_params(batches), goodput, sdir), console, say=console.print)
    print_comparison(read_comparison(sdir), console)
    return {"status": "complete", "dir": sdir.name}


def _batch_params(batches) -> list:
    """The sweep's grid: max_num_seqs over --batch-sizes."""
    return [("max_num_seqs", tuple(str(b) for b in batches))]


def _capacity(spec: BackendSpec, args, workloads, batches, goodput, out: Path, console) -> dict:
    """Step 4: the configurations of the sweep (else of the load step) each at its own capacity,
    when --capacity says so; every search starts at what that configuration finished before."""
    earlier = out / ("load" if spec.url else "sweep")
    before = read_comparison(earlier)
    unanswered = {w: reasons for w, entry in before["workloads"].items()
                  if (reasons := [r["reason"] for r in entry["recommendations"]
                                  if r["use_case"] in LATENCY_USE_CASES and r["config"] is None])}
    if args.capacity == "never" or (args.capacity == "auto" and not unanswered):
        why = ("--capacity never" if args.capacity == "never" else
               "--capacity auto: every workload has an interactive and a balanced configuration at its rate")
        console.print(f"4/5 capacity: skipped ({why})")
        return {"status": "skipped", "reason": why}
    slos = goodput or compare.DEFAULT_SLO_MS
    if unanswered:
        console.print(f"4/5 capacity: {'; '.join(f'{w}: {reasons[0]}' for w, reasons in unanswered.items())}")
    console.print(f"4/5 capacity of each configuration under {slo_text(slos, args.attainment)}")
    plan = CapacityPlan(slos=slos, attainment=args.attainment, start_rps=_start_rates(before))
    params = [] if spec.url else _batch_params(batches)  # --url: the server as it stands
    run_sweep(_sweep_spec(spec, args, workloads, params, goodput, out / "capacity", plan), console,
              say=console.print)
    print_comparison(read_comparison(out / "capacity"), console)
    return {"status": "complete", "dir": "capacity", "slo_ms": slos, "attainment": args.attainment}


def _start_rates(comparison: dict) -> dict:
    """(config, workload) -> the rate to start its capacity search: what it finished per second
    where it fell behind (90% of it: under its SLOs it sustains less than flat out), else the
    rate it kept up with."""
    starts = {}
    for w, entry in comparison["workloads"].items():
        for r in entry["rows"]:
            done, offered = (r.get("metrics") or {}).get("request_throughput"), r.get("offered_rps")
            if done and offered:
                starts[(r["config"], w)] = 0.9 * done if r["overloaded"] or not r["steady"] else offered
    return starts
