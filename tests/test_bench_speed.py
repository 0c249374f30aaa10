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
    """offmarl.bench.statistics' bootstrap (no interval below 5 seeds), with seeds that never reached the target."""
    assert bootstrap_interval([7.0] * 5) == (7.0, 7.0)
    assert bootstrap_interval([1.0, 2.0, 3.0]) == (None, None)
    low, high = bootstrap_interval([1.0, 2.0, math.inf, 3.0, 4.0])  # a seed that never reached the target
    assert math.isfinite(low) and high == math.inf
    assert bootstrap_interval([math.inf] * 5) == (math.inf, math.inf)
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
    for seed, final in enumerate((0.8, 1.0, 0.9, 0.9, 0.9)):  # ippo's final win rate: mean 0.9 -> target 0.72
        _run(tmp_path, "3s_vs_3z", "ippo", seed, list(zip(grid, (0.0, 0.2, 0.5, final))))
    for seed in range(5):  # dm2 reaches 0.75 at 200 frames in every seed
        _run(tmp_path, "3s_vs_3z", "dm2", seed, list(zip(grid, (0.3, 0.75, 0.9, 0.9))))
    for seed in range(5):  # sil never reaches it
        _run(tmp_path, "3s_vs_3z", "sil", seed, list(zip(grid, (0.0, 0.1, 0.2, 0.3))))
    _run(tmp_path, "3s_vs_3z", "qmix", 0, list(zip(grid, (0.0, 0.1, 0.2, 0.3))))  # one seed: no interval
    _run(tmp_path, "5m_vs_6m", "dm2", 0, list(zip(grid, (0.0, 0.1, 0.2, 0.3))))  # no ippo there: no rows
    return tmp_path


def test_learning_speed_by_hand(suite):
    rows = {r.algo: r for r in learning_speed(suite)}
    assert [r.algo for r in learning_speed(suite)] == ["ippo", "dm2", "qmix", "sil"]
    assert rows["ippo"].target == pytest.approx(0.72)
    assert rows["ippo"].frames == (400.0,) * 5 and rows["ippo"].verdict == "reference"
    assert rows["dm2"].frames == (200.0,) * 5 and (rows["dm2"].low, rows["dm2"].high) == (200.0, 200.0)
    assert rows["dm2"].verdict == "faster"
    assert rows["sil"].frames == (math.inf,) * 5 and rows["sil"].verdict == "slower"
    assert rows["qmix"].low is None and rows["qmix"].verdict == "n/a (< 5 seeds)"
    returns = {r.algo: r for r in learning_speed(suite, metric="return", fraction=0.5)}  # target 0.5 × 9 = 4.5
    assert returns["ippo"].frames == (300.0,) * 5 and returns["dm2"].frames == (200.0,) * 5


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
    assert "| 3s_vs_3z | dm2 | 0.720 | 5/5 reached | 200 | [200, 200] | faster |" in result.output
    sil = "| 3s_vs_3z | sil | 0.720 | 0/5 reached | not reached | [not reached, not reached] | slower |"
    assert sil in out.read_text()
    assert "| 3s_vs_3z | qmix | 0.720 | 0/1 reached | not reached | n/a | n/a (< 5 seeds) |" in out.read_text()
