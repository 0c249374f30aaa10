"""The tail every adapter's CLI test shares: a tiny `offmarl train bc` on a collected file, then `offmarl eval`."""

from __future__ import annotations

import json
from pathlib import Path

TINY_BC = ["--set", "hidden=8", "--set", "history=2", "--set", "batch_size=4"]


def train_bc_then_eval(runner, data: Path, run: Path, episodes: int, train_eval_episodes: int) -> dict:
    """Train bc for 4 steps on ``data`` into ``run``, evaluate ``episodes`` episodes; returns eval.json."""
    from offmarl.cli import app

    result = runner.invoke(app, ["train", "bc", "--dataset", str(data), "--out", str(run), "--steps", "4",
                                 "--eval-episodes", str(train_eval_episodes), "--quiet", *TINY_BC])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["eval", str(run), "--episodes", str(episodes)])
    assert result.exit_code == 0, result.output
    return json.loads((run / "eval.json").read_text())
