"""offmarl bench cost: training time vs a reference at equal updates, and a staged algorithm's stage shares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from offmarl.bench.cost import cost_rows, read_run_time, read_stage_times, training_cost
from offmarl.bench.records import EvalRecord
from offmarl.bench.suite import check_algorithms, check_datasets, load_suite
from offmarl.cli import app
from offmarl.core.machine import cpu_name

CPU = "Test CPU 9000"


def write_run(root: Path, algo: str, seed: int, rows: list[tuple[int, str, float, float]] | None,
              dataset: str = "grid", cpu: str | None = CPU) -> Path:
    """eval.json, config.json and a metrics.csv of (step, stage, steps_per_s, wall_time) rows (None: no file)."""
    run = root / dataset / algo / f"seed{seed}"
    run.mkdir(parents=True)
    steps = rows[-1][0] if rows else 100
    (run / "eval.json").write_text(json.dumps({
        "schema_version": 1, "algo": algo, "dataset": dataset, "seed": seed, "return_mean": 1.0, "return_std": 0.0,
        "episodes": 4, "curve": [[steps, 1.0, 0.0]], "protocol": {"checkpoint": "last", "steps": steps}}))
    config = {"algo": algo, "torch_threads": 1, **({"cpu": cpu} if cpu else {})}
    (run / "config.json").write_text(json.dumps(config))
    if rows is not None:
        body = "".join(f"{s},{st},{r!r},{w!r},0.5\n" for s, st, r, w in rows)
        text = "step,stage,steps_per_s,wall_time,loss\n" + body
        (run / "metrics.csv").write_text(text)
    return run


@pytest.fixture
def runs(tmp_path):
    """madt: 200 updates in 4 / 8 / 5 s of updates (median 5: 25 ms an update), wall 5 / 10 / 6 (median 6).
    distill: 200 teacher + 200 student updates; update seconds teacher + student = 2 + 4, 4 + 4, 3 + 9 (totals
    6, 8, 12: median 8 = 20 ms an update = 0.8 x madt's; teacher shares 1/3, 1/2, 1/4: median 1/3); wall
    teacher + student = 3 + 5, 5 + 5, 4 + 12 (totals 8, 10, 16: median 10 = 25 ms = 25/30 of madt's 30 ms;
    shares 3/8, 1/2, 1/4: median 3/8)."""
    root = tmp_path / "cost"
    for seed, (rate, walls) in enumerate([(50.0, (2.5, 5.0)), (25.0, (5.0, 10.0)), (40.0, (3.0, 6.0))]):
        write_run(root, "madt", seed, [(100, "train", rate, walls[0]), (200, "train", rate, walls[1])])
    for seed, (teacher, student, walls) in enumerate([(2.0, 4.0, (3.0, 8.0)), (4.0, 4.0, (5.0, 10.0)),
                                                      (3.0, 9.0, (4.0, 16.0))]):
        rows = [(100, "teacher", 100 / (teacher / 2), walls[0] / 2), (200, "teacher", 100 / (teacher / 2), walls[0]),
                (300, "student", 100 / (student / 2), (walls[0] + walls[1]) / 2), (400, "student", 100 / (student / 2),
                                                                                   walls[1])]
        write_run(root, "distill", seed, rows)
    return root


def _records(root: Path) -> list[EvalRecord]:
    return [EvalRecord.read(p) for p in sorted(root.rglob("eval.json"))]


def test_stage_times_of_a_metrics_file(runs):
    stages = read_stage_times(runs / "grid" / "distill" / "seed2" / "metrics.csv")
    assert [(s.stage, s.steps) for s in stages] == [("teacher", 200), ("student", 200)]
    assert [s.update_s for s in stages] == pytest.approx([3.0, 9.0])
    assert [s.wall_s for s in stages] == pytest.approx([4.0, 12.0])
    run = read_run_time(EvalRecord.read(runs / "grid" / "distill" / "seed2" / "eval.json"))
    assert (run.steps, run.cpu, run.threads) == (400, CPU, 1)
    assert run.update_s == pytest.approx(12.0) and run.wall_s == pytest.approx(16.0)


def test_ratio_at_equal_updates_and_teacher_share(runs):
    rows = cost_rows([read_run_time(r) for r in _records(runs)], reference="madt")
    madt, distill = rows
    assert (madt.algo, madt.seeds, madt.steps) == ("madt", (0, 1, 2), 200)
    assert madt.update_s == pytest.approx(5.0) and madt.update_ratio == pytest.approx(1.0)
    assert madt.update_shares == ()
    assert (distill.algo, distill.steps) == ("distill", 400)
    assert distill.update_s == pytest.approx(8.0) and distill.wall_s == pytest.approx(10.0)
    assert distill.update_ratio == pytest.approx((8.0 / 400) / (5.0 / 200))  # 0.8
    assert distill.wall_ratio == pytest.approx((10.0 / 400) / (6.0 / 200))
    assert [s for s, _ in distill.update_shares] == ["teacher", "student"]
    assert distill.update_shares[0][1] == pytest.approx(1 / 3) and distill.update_shares[1][1] == pytest.approx(2 / 3)
    assert distill.wall_shares[0][1] == pytest.approx(3 / 8)


def test_markdown_and_command(runs, tmp_path):
    write_run(runs, "bc", 0, None)  # no metrics.csv: listed, left out
    out = tmp_path / "cost.md"
    result = CliRunner().invoke(app, ["bench", "cost", str(runs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text in result.output
    assert "| grid | madt | 3 | 200 | 5.0 | 25.00 | 1.00 (+0%) | – | 6.0 | 1.00 (+0%) | – |" in text
    assert ("| grid | distill | 3 | 400 | 8.0 | 20.00 | 0.80 (-20%) | teacher 33% · student 67% | 10.0 | "
            "0.83 (-17%) | teacher 38% · student 62% |") in text
    assert f"CPU: {CPU} (1 torch thread)." in text and "Left out (no metrics.csv): bc on grid seed 0." in text


def test_errors_name_the_problem(runs, tmp_path):
    with pytest.raises(ValueError, match="no run of the reference 'ippo' .*distill, madt"):
        training_cost(_records(runs), reference="ippo")
    bare = tmp_path / "bare"
    write_run(bare, "madt", 0, None)
    with pytest.raises(ValueError, match="no run has a metrics.csv"):
        training_cost(_records(bare))
    bad = write_run(tmp_path / "bad", "madt", 0, [(100, "train", 10.0, 1.0)])
    (bad / "metrics.csv").write_text("step,stage,steps_per_s,wall_time\n100,train,fast,1.0\n")
    with pytest.raises(ValueError, match=r"metrics.csv: row 1: expected numbers"):
        read_stage_times(bad / "metrics.csv")


def test_rows_follow_the_suite_order(runs):
    write_run(runs, "bc", 0, [(200, "train", 100.0, 2.0)])
    write_run(runs, "madt", 0, [(200, "train", 40.0, 6.0)], dataset="other")
    times = [read_run_time(r) for r in _records(runs)]
    rows = cost_rows(times, "madt", dataset_order=["other", "grid"], algo_order=["bc", "madt", "distill"])
    assert [(r.dataset, r.algo) for r in rows] == [("other", "madt"), ("grid", "madt"), ("grid", "bc"),
                                                   ("grid", "distill")]


def test_mixed_cpus_are_flagged(runs):
    write_run(runs, "madt", 0, [(200, "train", 40.0, 6.0)], dataset="other", cpu=None)
    text = training_cost(_records(runs))
    assert "not recorded" in text and "not comparable across CPUs" in text


def test_cpu_name_is_recorded():
    assert cpu_name() and isinstance(cpu_name(), str)


def test_builtin_cost_suite():
    suite = load_suite("tseng-cost")
    check_algorithms(suite)
    check_datasets(suite)
    steps = {a.label: a.steps or suite.steps for a in suite.algorithms}
    assert steps["madt"] == steps["distill"] == steps["teacher"]  # equal total updates
    assert suite.eval_every > 0  # the convergence curves of the teacher vs MADT
