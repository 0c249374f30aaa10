"""offmarl bench status: the state of every planned run of a suite, read from its directories."""

from __future__ import annotations

import fcntl
import json

from typer.testing import CliRunner

from offmarl.cli import app


def make_suite_dir(root):
    suite = {"name": "s", "datasets": [{"label": "d1"}], "algorithms": [{"label": "bc"}, {"label": "distill@wide"}]}
    (root / "s").mkdir(parents=True)
    (root / "s" / "suite.json").write_text(json.dumps({"suite": suite, "seeds": [0, 1, 2],
                                                       "commands": ["offmarl bench run s.yaml --out runs"]}))
    run = lambda algo, seed: root / "s" / "d1" / algo / f"seed{seed}"  # noqa: E731
    for algo, seed in (("bc", 0), ("bc", 1), ("bc", 2), ("distill@wide", 0), ("distill@wide", 1)):
        run(algo, seed).mkdir(parents=True)
        (run(algo, seed) / "bench.json").write_text(json.dumps({"steps": 400}))
    for seed in (0, 1):
        (run("bc", seed) / "eval.json").write_text("{}")
    (run("bc", 2) / "error.txt").write_text("Traceback (most recent call last):\n  ...\nRuntimeError: boom\n")
    (run("distill@wide", 0) / "checkpoints").mkdir()
    (run("distill@wide", 0) / "checkpoints" / "last.pt").write_bytes(b"")
    (run("distill@wide", 0) / "metrics.csv").write_text("step,loss\n100,1.0\n200,0.5\n")
    return run


def test_status_counts_every_state_and_names_the_unfinished_runs(tmp_path):
    run = make_suite_dir(tmp_path)
    with open(run("distill@wide", 1) / ".lock", "w") as held:  # a bench is running this one right now
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(app, ["bench", "status", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "## s: 2 of 6 runs done (33 %)"
    assert "2 done, 1 running, 1 partial, 1 failed, 1 pending" in lines
    assert "- failed: bc · d1 · seed 2: RuntimeError: boom" in lines
    assert "- partial: distill@wide · d1 · seed 0 at step 200/400" in lines
    assert "- running: distill@wide · d1 · seed 1" in lines
    assert "To finish: `offmarl bench run s.yaml --out runs` (finished runs are skipped, partial ones resume)." in lines

    released = CliRunner().invoke(app, ["bench", "status", str(tmp_path / "s")])  # the lock is free again
    assert "2 done, 1 partial, 1 failed, 2 pending" in released.output.splitlines()


def test_status_of_a_directory_without_suites_is_an_error(tmp_path):
    result = CliRunner().invoke(app, ["bench", "status", str(tmp_path)])
    assert result.exit_code == 2 and f"no suite directory (with suite.json) under {tmp_path}" in result.output
