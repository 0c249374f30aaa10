"""Kill a training process with SIGKILL mid-run, resume it, and get the uninterrupted run's weights."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import _toy_env
import pytest
import torch
from typer.testing import CliRunner

from offmarl.cli import app
from offmarl.data.io import save_dataset

torch.set_num_threads(1)

STEPS = 300
# The CLI in a fresh interpreter with one torch thread (reductions split differently over more threads), with
# toy_pick registered (the dataset's card names it, and the loader checks it against the registry).
TESTS = str(Path(__file__).resolve().parent)
TRAIN = (f"import sys, torch; torch.set_num_threads(1); sys.path.insert(0, {TESTS!r}); import _toy_env; "
         "from offmarl.cli import main; sys.argv[0] = 'offmarl'; main()")


def train_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "bc", "--dataset", str(dataset), "--out", str(out), "--steps", str(STEPS), "--seed", "3",
            "--checkpoint-every", "30", "--eval-episodes", "0", "--quiet",
            "--set", "hidden=16", "--set", "history=2", "--set", "batch_size=8", *extra]


def start(dataset: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", TRAIN, *train_args(dataset, out, *extra)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> None:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model" / "algo.pt", weights_only=True)["nets"]


@pytest.mark.timeout(120)
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    dataset = save_dataset(_toy_env.toy_dataset(episodes=40, seed=0), tmp_path / "small.h5")
    victim = start(dataset, tmp_path / "killed")
    checkpoint = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 60
    while not checkpoint.exists():
        assert victim.poll() is None, victim.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.01)
    time.sleep(0.05)
    assert victim.poll() is None, "the run finished before it could be killed; raise STEPS"
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    killed_at = torch.load(checkpoint, weights_only=True)["step"]
    assert 0 < killed_at < STEPS and not (tmp_path / "killed" / "model").exists()

    resumed = start(dataset, tmp_path / "killed", "--resume")
    # the uninterrupted run, in this process (one torch thread too) while the resumed one runs
    reference = CliRunner().invoke(app, train_args(dataset, tmp_path / "reference"))
    assert reference.exit_code == 0, reference.output
    finish(resumed)

    a, b = weights(tmp_path / "reference"), weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    with open(tmp_path / "killed" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / "reference" / "metrics.csv", newline="") as f:
        ref_rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(set(steps)) and steps == [int(r["step"]) for r in ref_rows]
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref_rows]
