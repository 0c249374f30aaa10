"""offmarl bench: the ``metric_curves`` suite key, metric curves from metrics.csv and their final-value table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from offmarl.bench.plots import plot_metric_curves
from offmarl.bench.records import EvalRecord, build_table, seed_band
from offmarl.bench.report import suite_report
from offmarl.bench.run_metrics import metric_runs, read_metric
from offmarl.bench.suite import check_algorithms, check_datasets, load_suite, parse_suite
from offmarl.bench.tables import final_metric_markdown
from offmarl.cli import app

BASE = {"name": "s", "description": "d", "datasets": [{"recipe": "tseng/fill_in"}], "algorithms": ["bc"], "steps": 10}
PNG = b"\x89PNG\r\n\x1a\n"
# dec_mabcq's metrics.csv: a VAE stage (its own losses), then the main stage, which logs value_diff
HEADER = "step,stage,steps_per_s,wall_time,g1_loss,g2_loss,q_loss,lambda_vd,lambda_tn,policy_loss,value_diff"


# ---- the suite key -------------------------------------------------------------------------------------------
def test_metric_curves_key_is_parsed_and_recorded(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({**BASE, "metric_curves": ["value_diff", "q_loss"]}))
    suite = load_suite(path)
    assert suite.metric_curves == ("value_diff", "q_loss")
    assert suite.to_dict()["metric_curves"] == ["value_diff", "q_loss"]
    assert parse_suite(BASE, "s.yaml").metric_curves == ()  # optional
    assert parse_suite({**BASE, "metric_curves": None}, "s.yaml").metric_curves == ()


@pytest.mark.parametrize("value, message", [
    ("value_diff", "metric_curves: expected a list of metrics.csv column names"),
    ([3], "metric_curves[0]: expected a metrics.csv column name, got 3"),
    (["step"], "metric_curves[0]: 'step' is the x axis"),
    (["a b"], "metric_curves[0]: 'a b' is not a valid column name"),
    (["q_loss", "q_loss"], "metric_curves: 'q_loss' appears more than once"),
])
def test_bad_metric_curves_name_the_file_and_the_key(tmp_path, value, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**BASE, "metric_curves": value}))
    with pytest.raises(ValueError) as info:
        load_suite(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_builtin_mabcq_equal_space_suite():
    suite = load_suite("mabcq-equal-space")
    check_algorithms(suite)
    check_datasets(suite)
    assert suite.metric_curves == ("value_diff",) and len(suite.seeds) == 3
    assert [d.recipe for d in suite.datasets] == ["mabcq/equal_space/per_agent"]
    assert [a.label for a in suite.algorithms] == [f"dec_mabcq[{v}]" for v in
                                                   ("vd_tn", "vd", "tn", "bcq", "ddpg", "behavior")]
    assert suite.steps // suite.eval_every == 5  # five points on the return curve


# ---- hand-made run directories ---------------------------------------------------------------------------------
def write_run(root: Path, algo: str, dataset: str, seed: int, ret: float, value_diff: list | None,
              steps: int = 200) -> Path:
    """An eval.json as `offmarl train` writes it and a metrics.csv: VAE rows at steps 50 and 100 with blank
    value_diff, main rows at 100 + 50 k with ``value_diff`` (None: a blank cell; no list: no such column)."""
    run = root / dataset / algo / f"seed{seed}"
    run.mkdir(parents=True)
    record = {"schema_version": 1, "algo": algo, "dataset": dataset, "seed": seed, "return_mean": ret,
              "return_std": 0.0, "per_agent_return": [ret, ret], "episodes": 4, "lengths": [2] * 4,
              "returns": [[ret, ret]] * 4, "win_rate": None, "curve": [[100, ret - 1.0, 0.0], [steps, ret, 0.0]],
              "protocol": {"checkpoint": "last", "eval_seed": 12345, "greedy": True, "steps": steps,
                           "target_return": None},
              "offmarl_version": "0.1.0", "created": "2026-01-01T00:00:00Z"}
    (run / "eval.json").write_text(json.dumps(record))
    if value_diff is None:  # an algorithm that does not log the metric (dec_mabcq[behavior])
        rows = ["step,stage,steps_per_s,wall_time,g1_loss", "50,vae,90.0,0.5,0.6", "100,vae,91.0,1.0,0.5"]
    else:
        rows = [HEADER, "50,vae,80.0,0.6,0.59,0.58,,,,,", "100,vae,81.0,1.2,0.5,0.5,,,,,"]
        rows += [f"{150 + 50 * k},main,10.0,{2.0 + k},,,1.5,1.0,1.2,0.1,{'' if v is None else repr(v)}"
                 for k, v in enumerate(value_diff)]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    return run


@pytest.fixture
def runs(tmp_path):
    """A on d1: value_diff at steps 150/200/250 seed 0 = 0.5, 0.4, 0.2, seed 1 = 0.7, NaN, 0.4 -> common
    steps 150, 250: mean 0.6, 0.3, std 0.1, 0.1; final values 0.2, 0.4 -> 0.300 ± 0.100. B (d1 and d2) logs
    no value_diff. C on d1, one seed, a blank cell at 200: 0.9, -, 0.6 -> final 0.600 ± 0.000."""
    root = tmp_path / "suite"
    write_run(root, "A", "d1", 0, 1.0, [0.5, 0.4, 0.2])
    write_run(root, "A", "d1", 1, 2.0, [0.7, float("nan"), 0.4])
    write_run(root, "B", "d1", 0, 3.0, None)
    write_run(root, "B", "d2", 0, 3.0, None)
    write_run(root, "C", "d1", 0, 0.0, [0.9, None, 0.6])
    return root


def test_read_metric_skips_blank_and_nan_cells(runs):
    assert read_metric(runs / "d1" / "A" / "seed1" / "metrics.csv", "value_diff") == {150.0: 0.7, 250.0: 0.4}
    assert read_metric(runs / "d1" / "C" / "seed0" / "metrics.csv", "value_diff") == {150.0: 0.9, 250.0: 0.6}
    assert read_metric(runs / "d1" / "B" / "seed0" / "metrics.csv", "value_diff") is None
    assert read_metric(runs / "nowhere.csv", "value_diff") is None
    bad = runs / "d1" / "A" / "seed0" / "metrics.csv"
    bad.write_text(HEADER + "\n150,main,10.0,2.0,,,1.5,1.0,1.2,0.1,oops\n")
    with pytest.raises(ValueError, match=r"metrics\.csv: step '150': column 'value_diff' holds 'oops'"):
        read_metric(bad, "value_diff")


def test_metric_band_is_over_seeds_at_common_steps_and_skips_algorithms_without_it(runs):
    table = build_table([EvalRecord.read(p) for p in sorted(runs.rglob("eval.json"))], ["A", "B", "C"])
    cells = metric_runs(table, "value_diff")
    assert sorted(cells) == [("A", "d1"), ("C", "d1")]  # B never logs value_diff
    steps, mean, std = seed_band([r.series for r in cells[("A", "d1")]])
    assert steps.tolist() == [150.0, 250.0]
    np.testing.assert_allclose(mean, [0.6, 0.3])
    np.testing.assert_allclose(std, [0.1, 0.1])

    paths = plot_metric_curves(table, runs, ["value_diff", "q_loss", "not_logged"])
    assert [p.name for p in paths] == ["metric_value_diff_d1.png", "metric_q_loss_d1.png"]  # nobody logs on d2
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == PNG and len(data) > 5000
    assert not (runs / "metric_value_diff_d2.png").exists() and not list(runs.glob("metric_not_logged*"))


def write_suite_record(root: Path, metric_curves: list[str] | None) -> None:
    suite = {"name": "suite", "description": "hand-made", "algorithms": [{"label": a} for a in ("A", "B", "C")],
             "datasets": [{"label": "d1"}, {"label": "d2"}]}
    if metric_curves is not None:
        suite["metric_curves"] = metric_curves
    (root / "suite.json").write_text(json.dumps({"suite": suite, "commands": ["offmarl bench run hand.yaml"]}))


def test_report_appends_the_final_values_and_plots_the_curves(runs):
    write_suite_record(runs, ["value_diff"])
    result = CliRunner().invoke(app, ["bench", "table", str(runs)])  # `offmarl bench table` regenerates them
    assert result.exit_code == 0, result.output
    markdown = (runs / "table.md").read_text()
    section = markdown[markdown.index("### value_diff at the end of training"):].splitlines()
    assert section[2:6] == ["| algorithm | d1 |", "| --- | --- |", "| A | 0.300 ± 0.100 |", "| C | 0.600 ± 0.000 |"]
    assert "(max_i V_i − min_i V_i) at each run's last logged step of its metrics.csv (step 250)" in section[7]
    assert "seeds per cell: A on d1: 2; C on d1: 1" in section[7]
    assert "`metric_value_diff_d1.png`" in section[7] and section[8] == "Not logged by: B."
    assert markdown.index("| A | 1.50 ± 0.50 |") < markdown.index("### value_diff")  # after the return table
    assert (runs / "metric_value_diff_d1.png").read_bytes()[:8] == PNG
    assert f"plot:  {runs / 'metric_value_diff_d1.png'}" in result.output
    assert "### value_diff at the end of training" in result.output


def test_suite_json_without_the_key_still_reports(runs):
    write_suite_record(runs, None)  # a suite.json of a bench from before metric_curves existed
    report = suite_report(runs)
    assert "### value_diff" not in report.markdown and not list(runs.glob("metric_*.png"))
    assert {p.name for p in report.plots} == {"curves_d1.png", "curves_d2.png", "bars.png"}


def test_a_metric_removed_from_the_suite_leaves_no_stale_plot(runs):
    write_suite_record(runs, ["value_diff"])
    suite_report(runs)
    assert (runs / "metric_value_diff_d1.png").exists()
    (runs / "curves_old_dataset.png").write_bytes(b"stale")  # a dataset an earlier suite version had
    (runs / "notes.png").write_bytes(b"mine")  # not a name the report writes: left alone
    write_suite_record(runs, None)
    report = suite_report(runs)
    assert not list(runs.glob("metric_*.png")) and not (runs / "curves_old_dataset.png").exists()
    assert (runs / "notes.png").exists() and all(p.exists() for p in report.plots)


def test_indexed_metrics_take_their_prefix_caption_and_unknown_ones_none():
    from offmarl.bench.run_metrics import metric_label

    assert metric_label("value_diff") == "max_i V_i − min_i V_i"
    assert metric_label("effective_items_1").startswith("SIT's replay of one agent type")
    assert metric_label("q_loss") is None


def test_a_metric_logged_once_per_run_gets_its_final_value_and_no_curve(tmp_path):
    """A stage that runs once (SIT's replay build logs effective_items_* once) leaves one point per run: no plot
    of a single point; the section says so."""
    root = tmp_path / "once"
    write_run(root, "D", "d3", 0, 1.0, [0.5, None, None])
    write_run(root, "D", "d3", 1, 1.0, [0.7, None, None])
    table = build_table([EvalRecord.read(p) for p in sorted(root.rglob("eval.json"))])
    assert plot_metric_curves(table, root, ["value_diff"]) == [] and not list(root.glob("metric_*.png"))
    section = final_metric_markdown(table, "value_diff")
    assert "| D | 0.600 ± 0.100 |" in section and "Logged once per run: no curves over training." in section
    assert ".png" not in section
