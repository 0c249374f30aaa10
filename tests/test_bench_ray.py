"""offmarl bench on Ray: the same runs as Ray tasks on a local Ray (skipped when ray is not installed)."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray", reason="ray is not installed (optional extra: pip install 'offmarl[ray]'; "
                                        "`make test` installs it)")

from test_bench import tiny_suite  # noqa: E402

from offmarl.bench.report import suite_report  # noqa: E402
from offmarl.bench.runner import STATUS_DONE, run_suite  # noqa: E402
from offmarl.bench.suite import load_suite  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module's tests (starting one takes seconds); the first run_suite starts it."""
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.mark.timeout(180)
def test_ray_backend_runs_a_two_run_suite_on_a_local_ray(tmp_path, monkeypatch, local_ray):
    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path / "home"))
    suite = load_suite(tiny_suite(tmp_path / "ray.yaml", seeds=2))
    result = run_suite(suite, backend="ray", workers=2, out=tmp_path / "runs", echo=lambda _: None, progress=False)
    assert [o.status for o in result.outcomes] == [STATUS_DONE, STATUS_DONE]
    assert ray.is_initialized() and ray.cluster_resources().get("CPU", 0) >= 1
    runs = [tmp_path / "runs" / "tiny" / "equal_space" / "bc" / f"seed{k}" for k in range(2)]
    for seed, run in enumerate(runs):
        record = json.loads((run / "eval.json").read_text())
        assert record["algo"] == "bc" and record["dataset"] == "equal_space" and record["seed"] == seed
        assert record["protocol"]["steps"] == 20 and record["episodes"] == 2
    threads = json.loads((runs[0] / "config.json").read_text())["torch_threads"]
    assert threads == max(1, int(ray.cluster_resources()["CPU"]) // 2)  # cores // workers per task
    report = suite_report(result.suite_dir, result.eval_files)
    assert "| bc |" in report.markdown and report.table_md.exists()

    # a second bench on the same directory skips both runs without starting anything
    again = run_suite(suite, backend="ray", workers=2, out=tmp_path / "runs", echo=lambda _: None, progress=False)
    assert again.outcomes == [] and len(again.skipped) == 2


def task_process(function: str) -> int | None:
    """The pid of the Ray worker running a task of ``function`` (Ray titles it ``ray::<function>``)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(f"ray::{function}".encode()):
                return int(entry.name)
        except OSError:  # the process ended while we looked
            continue
    return None


@pytest.mark.timeout(240)
def test_a_killed_ray_worker_is_retried_and_its_run_resumes_from_its_checkpoint(tmp_path, monkeypatch, local_ray):
    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path / "home"))
    steps = 400
    suite = load_suite(tiny_suite(tmp_path / "kill.yaml", seeds=2, steps=steps, eval_every=0, checkpoint_every=20))
    out = tmp_path / "runs"
    runs = [out / "tiny" / "equal_space" / "bc" / f"seed{k}" for k in range(2)]
    killed: dict[str, object] = {}

    def kill_a_worker_mid_run() -> None:
        """SIGKILL the worker of the first run that has a checkpoint but no eval.json (half done)."""
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            half_done = [r for r in runs if (r / "checkpoints" / "last.pt").exists() and not (r / "eval.json").exists()]
            pid = task_process("execute_run") if half_done else None
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed.update(run=half_done[0], step=torch.load(half_done[0] / "checkpoints" / "last.pt",
                                                                weights_only=True)["step"])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker_mid_run)
    killer.start()
    result = run_suite(suite, backend="ray", workers=1, out=out, echo=lambda _: None, progress=False)
    killer.join()
    assert "run" in killed, "no run was caught half done; raise steps"
    assert sorted(o.run_dir for o in result.outcomes) == [str(r) for r in runs]  # each run reported once
    assert [o.status for o in result.outcomes] == [STATUS_DONE, STATUS_DONE], result.outcomes
    assert sorted(out.rglob("eval.json")) == [r / "eval.json" for r in runs]
    resumes = json.loads((killed["run"] / "config.json").read_text()).get("resumes", [])
    assert [r["step"] for r in resumes] == [killed["step"]] and 0 < killed["step"] < steps  # from its checkpoint
    for run in runs:
        with open(run / "metrics.csv", newline="") as f:
            metric_steps = [int(row["step"]) for row in csv.DictReader(f)]
        assert metric_steps == sorted(set(metric_steps)) and metric_steps[-1] == steps, run
        assert json.loads((run / "eval.json").read_text())["protocol"]["steps"] == steps
    report = suite_report(result.suite_dir, result.eval_files)
    assert sorted(p.relative_to(report.records) for p in report.records.rglob("seed*.json")) == [
        Path("equal_space/bc/seed0.json"), Path("equal_space/bc/seed1.json")]
    assert not [p for p in out.rglob(".*") if ".tmp" in p.name]
