"""`varcas pipeline`: the whole workflow into one directory, offline and against a --url server."""
import json

from tests.load.helpers import varcas_cli
from varcas import rundir
from varcas.testing import spawn


def pipeline(*argv, timeout=120):
    return varcas_cli("-m", "varcas.cli", "pipeline", *argv, timeout=timeout)


def test_offline_pipeline_writes_every_artifact_and_resumes(tmp_path):
    out = tmp_path / "p"
    argv = ["--model", "llama-2-7b", "--gpu", "t4", "--quant", "awq", "--offline", "--workload", "chat_low",
            "--batch-sizes", "1,8", "--duration", "30", "--quiet", "--out", str(out)]
    r = pipeline(*argv)
    assert r.returncode == 0, r.stderr
    state = json.loads((out / "pipeline.json").read_text())
    assert state["steps"]["roofline"]["status"] == "complete"
    assert state["steps"]["load"] == {"chat_low": {"status": "complete", "run": "load/max_num_seqs-256/chat_low"}}
    assert state["steps"]["sweep"] == {"status": "complete", "dir": "sweep"}
    assert state["steps"]["report"]["status"] == "complete"
    assert "simulated" in state["target"] and "not a real GPU" in state["target"]
    roof = json.loads((out / "roofline" / "roofline.json").read_text())
    assert roof["model"]["name"] == "llama-2-7b" and roof["precision"]["name"] == "awq"
    assert sorted({p["batch"] for p in roof["phases"]}) == [1, 8]
    manifest = rundir.read_manifest(out / "load" / "max_num_seqs-256" / "chat_low")
    assert manifest["target"]["kind"] == "sim" and manifest["target"]["params"]["max_num_seqs"] == 256
    assert manifest["target"]["params"]["gpu"].lower().startswith("t4")
    for cid in ("max_num_seqs-1", "max_num_seqs-8"):
        assert rundir.read_manifest(out / "sweep" / cid / "chat_low")["status"] == "complete"
    assert (out / "report.html").stat().st_size > 100_000 and "max_num_seqs-8" in (out / "REPORT.md").read_text()
    stamp = (out / "load" / "max_num_seqs-256" / "chat_low" / "run.json").stat().st_mtime_ns
    r = pipeline(*argv)
    assert r.returncode == 0, r.stderr
    assert (out / "load" / "max_num_seqs-256" / "chat_low" / "run.json").stat().st_mtime_ns == stamp  # resumed


def test_the_t4_example_answers_every_use_case_at_each_configurations_capacity(tmp_path):
    # The seed's scenario: at chat_medium's 20 req/s every batch size is overloaded on a T4, so the
    # capacity step compares them at rates they sustain, and every use case gets an answer.
    out = tmp_path / "p"
    r = pipeline("--model", "llama-2-7b", "--gpu", "t4", "--quant", "awq", "--offline", "--workload", "chat_medium",
                 "--batch-sizes", "4,16", "--duration", "60", "--quiet", "--out", str(out), timeout=300)
    assert r.returncode == 0, r.stderr
    at_rate = json.loads((out / "sweep" / "comparison.json").read_text())["workloads"]["chat_medium"]
    assert {x["use_case"]: x["config"] for x in at_rate["recommendations"]}["interactive"] is None
    state = json.loads((out / "pipeline.json").read_text())
    assert state["steps"]["capacity"] == {"status": "complete", "dir": "capacity",
                                          "slo_ms": {"ttft": 1000.0, "tpot": 100.0}, "attainment": 0.99}
    entry = json.loads((out / "capacity" / "comparison.json").read_text())["workloads"]["chat_medium"]
    recs = {x["use_case"]: x for x in entry["recommendations"]}
    assert all(recs[u]["config"] for u in ("interactive", "balanced", "throughput", "cost")), recs
    rows = {row["config"]: row for row in entry["rows"]}
    for cid in ("max_num_seqs-4", "max_num_seqs-16"):
        found = json.loads((out / "capacity" / cid / "chat_medium.capacity" / "capacity.json").read_text())
        rate = found["result"]["capacity_rps"]
        assert rate and rundir.read_manifest(out / "capacity" / cid / "chat_medium")["config"]["rps"] == rate
        assert rate < 20.0 and rows[cid]["offered_rps"] < 20.0
    for use in ("interactive", "balanced"):
        row = rows[recs[use]["config"]]
        assert row["steady"] and not row["overloaded"] and " req/s offered" in recs[use]["reason"]
    assert "chat_medium at each one's capacity" in (out / "REPORT.md").read_text()


def test_capacity_step_runs_only_when_a_use_case_has_no_answer(tmp_path):
    base = ["--model", "llama-2-7b", "--gpu", "t4", "--quant", "awq", "--offline", "--workload", "chat_medium",
            "--batch-sizes", "16", "--duration", "30", "--quiet"]
    r = pipeline(*base, "--rps", "0.3", "--out", str(tmp_path / "kept-up"))
    assert r.returncode == 0, r.stderr
    step = json.loads((tmp_path / "kept-up" / "pipeline.json").read_text())["steps"]["capacity"]
    assert step["status"] == "skipped" and "every workload has an interactive and a balanced" in step["reason"]
    r = pipeline(*base, "--capacity", "never", "--out", str(tmp_path / "never"))
    assert r.returncode == 0, r.stderr
    step = json.loads((tmp_path / "never" / "pipeline.json").read_text())["steps"]["capacity"]
    assert step == {"status": "skipped", "reason": "--capacity never"} and not (tmp_path / "never" / "capacity").exists()


def test_url_pipeline_skips_the_sweep_and_says_why(tmp_path):
    out = tmp_path / "p"
    with spawn(tokens=8, itl_ms=1.0) as server:
        r = pipeline("--model", "llama-2-7b", "--gpu", "t4", "--url", server.url, "--workload", "chat_low",
                     "--rps", "5", "--duration", "3", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    state = json.loads((out / "pipeline.json").read_text())
    assert state["steps"]["load"]["chat_low"] == {"status": "complete", "run": "load/default/chat_low"}
    assert state["steps"]["sweep"]["status"] == "skipped" and "--server-cmd" in state["steps"]["sweep"]["reason"]
    assert rundir.read_manifest(out / "load" / "default" / "chat_low")["target"]["url"] == server.url
    assert (out / "report.html").is_file()


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "file").write_text("")
    for argv, message in [
        (["--model", "nope-7b", "--gpu", "t4"], "nope-7b"),
        (["--model", "llama-2-7b", "--gpu", "z80"], "z80"),
        (["--model", "llama-2-7b", "--gpu", "t4", "--batch-sizes", "1,x"], "--batch-sizes"),
        (["--model", "llama-2-7b", "--gpu", "t4", "--workload", "nope"], "nope"),
        (["--model", "llama-2-7b", "--gpu", "t4", "--sim-gpu", "h100"], "--sim-*"),
        (["--model", "llama-2-7b", "--gpu", "t4", "--server-cmd", "vllm serve m --port {port}"], "{max_num_seqs}"),
        (["--model", "llama-2-7b", "--gpu", "t4", "--attainment", "1.5"], "--attainment must be in (0, 1]"),
        (["--model", "llama-2-7b", "--gpu", "t4", "--capacity", "sometimes"], "--capacity"),
    ]:
        r = pipeline(*argv, "--offline" if "--server-cmd" not in argv else "--quiet", "--out", str(tmp_path / "o"))
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, (argv, r.stderr)
    r = pipeline("--model", "llama-2-7b", "--gpu", "t4", "--offline", "--out", str(tmp_path / "file" / "o"))
    assert r.returncode == 2 and "cannot create" in r.stderr
    unrelated = tmp_path / "photos"
    unrelated.mkdir()
    (unrelated / "REPORT.md").write_text("mine")
    r = pipeline("--model", "llama-2-7b", "--gpu", "t4", "--offline", "--out", str(unrelated))
    assert r.returncode == 2 and r.stderr.strip().endswith(
        f"--out {unrelated}: exists and is neither empty nor a pipeline directory")
    assert [p.name for p in unrelated.iterdir()] == ["REPORT.md"] and (unrelated / "REPORT.md").read_text() == "mine"
