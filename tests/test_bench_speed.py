"""offmarl.bench.speed and ``offmarl bench speed``: frames to reach a fraction of a reference's final score, on
hand-made eval.json files with hand-computed answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from offmarl.bench.speed import bootstrap_interval, first_reach, learning_speed
from offmarl.cli import app


def test_first_reach_is_the_first_evaluation_at_or_above_the_target():
    curve = [(300.0, 0.5), (100.0, 0.1), (200.0, 0.4), (400.0, 0.3)]  # unsorted on purpose
    assert first_reach(curve, 0.4) == 200.0 and first_reach(curve, 0.45) == 300.0
    assert first_reach(curve, 0.6) == math.inf


def test_bootstrap_interval_of_the_mean():
    assert bootstrap_interval([7.0, 7.0, 7.0]) == (7.0, 7.0)
    low, high = bootstrap_interval([0.0, 10.0], reps=4000)
    # the mean of two draws from {0, 10} is 0, 5 or 10 with probabilities 1/4, 1/2, 1/4: the 2.5 % and 97.5 %
    # quantiles are 0 and 10
    assert (low, high) == (0.0, 10.0)
    low, high = bootstrap_interval([1.0, 2.0, math.inf, 3.0, 4.0])  # a seed that never reached the target
    assert math.isfinite(low) and high == math.inf
    x = np.arange(20.0)
    low, high = bootstrap_interval(x)
    assert low < x.mean() < high and high - low < 2 * 1.96 * x.std(ddof=1) / np.sqrt(20)  # about ±1.96 s.e.


def _run(root, column, algo, seed, wins):
    run = root / column / algo / f"seed{seed}"
    run.mkdir(parents=True)
    record = {"algo": algo, "dataset": None, "source": column, "seed": seed, "return_mean": 0.0, "episodes": 8,
              "curve": [[s, 10 * w, 0.0] for s, w in wins], "win_curve": [list(p) for p in wins],
              "protocol": {"steps": wins[-1][0], "steps_unit": "frames"}}
    (run / "eval.json").write_text(json.dumps(record))


@pytest.fixture
def suite(tmp_path):
    grid = [100, 200, 300, 400]
    for seed, final in enumerate((0.8, 1.0)):  # ippo's final win rate: mean 0.9 -> target 0.72 at 80 %
        _run(tmp_path, "3s_vs_3z", "ippo", seed, list(zip(grid, (0.0, 0.2, 0.5, final))))
    for seed in range(2):  # dm2 reaches 0.75 at 200 frames in both seeds
        _run(tmp_path, "3s_vs_3z", "dm2", seed, list(zip(grid, (0.3, 0.75, 0.9, 0.9))))
    _run(tmp_path, "3s_vs_3z", "qmix", 0, list(zip(grid, (0.0, 0.1, 0.2, 0.3))))  # never reaches it
    _run(tmp_path, "5m_vs_6m", "dm2", 0, list(zip(grid, (0.0, 0.1, 0.2, 0.3))))  # no ippo there: no rows
    return tmp_path


def test_learning_speed_by_hand(suite):
    rows = {r.algo: r for r in learning_speed(suite)}
    assert [r.algo for r in learning_speed(suite)] == ["ippo", "dm2", "qmix"]
    assert rows["ippo"].target == pytest.approx(0.72)
    assert rows["ippo"].frames == (400.0, 400.0) and rows["ippo"].verdict == "reference"
    assert rows["dm2"].frames == (200.0, 200.0) and (rows["dm2"].low, rows["dm2"].high) == (200.0, 200.0)
    assert rows["dm2"].verdict == "faster"
    assert rows["qmix"].frames == (math.inf,) and rows["qmix"].verdict == "slower"
    returns = {r.algo: r for r in learning_speed(suite, metric="return", fraction=0.5)}  # target 0.5 × 9 = 4.5
    assert returns["ippo"].frames == (300.0, 300.0) and returns["dm2"].frames == (200.0, 200.0)


def test_bad_inputs_are_one_line_errors(suite, tmp_path):
    with pytest.raises(ValueError, match="no run of the reference 'mappo' with a win_rate curve"):
        learning_speed(suite, reference="mappo")
    with pytest.raises(ValueError, match="unknown metric 'wins'"):
        learning_speed(suite, metric="wins")
    with pytest.raises(ValueError, match=r"--fraction must be in \(0, 1\], got 1.5"):
        learning_speed(suite, fraction=1.5)


def test_offmarl_bench_speed_prints_and_writes_the_table(suite):
    out = suite / "speed.md"
    result = CliRunner().invoke(app, ["bench", "speed", str(suite), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| 3s_vs_3z | dm2 | 0.720 | 2/2 reached | 200 | [200, 200] | faster |" in result.output
    qmix = "| 3s_vs_3z | qmix | 0.720 | 0/1 reached | not reached | [not reached, not reached] | slower |"
    assert qmix in out.read_text()
