"""offmarl bench: suite parsing, table maths on hand-made eval.json files, plots, failures, resume after SIGKILL."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_files import leave_a_killed_write
from typer.testing import CliRunner

from offmarl.bench import runner as bench_runner
from offmarl.bench.aggregates import normalize
from offmarl.bench.layout import suite_dir_name
from offmarl.bench.plots import plot_curves
from offmarl.bench.records import EvalRecord, build_table, seed_curve
from offmarl.bench.suite import builtin_suites, check_algorithms, check_datasets, load_suite, parse_seeds, parse_suite
from offmarl.bench.tables import to_csv, to_markdown, win_rate_markdown
from offmarl.cli import app
from offmarl.core.files import atomic_path

# bc at its smallest on a 10-episode Equal Space dataset: a run is a second or two of work
TINY_BC = {"name": "bc", "overrides": {"hidden": 8, "history": 2, "batch_size": 4}}


def tiny_suite(path: Path, **changes) -> Path:
    suite = {"name": "tiny", "description": "bench test suite",
             "datasets": [{"recipe": "tseng/equal_space", "scale": 0.01}],
             "algorithms": [TINY_BC], "seeds": 1, "steps": 20, "eval_episodes": 2, "eval_every": 10,
             "checkpoint_every": 10}
    suite.update(changes)
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


# ---- suites -----------------------------------------------------------------------------------------------
BASE = {"name": "s", "description": "d", "datasets": [{"recipe": "tseng/fill_in"}], "algorithms": ["bc"], "steps": 10}


@pytest.mark.parametrize("change, message", [
    ({"epochs": 3}, "unknown key 'epochs'"),
    ({"datasets": [{"recipe": "tseng/fill_in", "episodes": 5}]}, "datasets[0]: unknown key 'episodes'"),
    ({"algorithms": [{"name": "bc", "overides": {}}]}, "algorithms[0]: unknown key 'overides'"),
    ({"datasets": [{"recipe": "tseng/fill_in", "path": "x.h5"}]},
     "datasets[0]: give exactly one of 'recipe' (a named recipe), 'path'"),
    ({"datasets": [{"recipe": "tseng/fill_in", "scale": -1}]}, "datasets[0].scale: must be > 0, got -1"),
    ({"algorithms": [{"ablation": "no_kl"}]}, "algorithms[0]: missing 'name'"),
    ({"algorithms": [{"name": "bc", "overrides": {"steps": 5}}]}, "algorithms[0].overrides.steps"),
    ({"algorithms": ["bc", "bc"]}, "algorithms: label 'bc' appears more than once"),
    ({"datasets": [{"recipe": "tseng/fill_in"}, {"recipe": "tseng/fill_in", "scale": 2}]},
     "datasets: label 'fill_in' appears more than once"),
    ({"datasets": [{"recipe": "tseng/fill_in", "label": "records"}]},
     "datasets[0].label: 'records' names a folder of the suite directory itself"),
    ({"train_scale": 0.1}, "'train_scale' multiplies each algorithm's default budget; give it or 'steps'"),
    ({"seeds": [1, 1]}, "seeds: seed list [1, 1] repeats a seed"),
    ({"eval_episodes": "many"}, "eval_episodes: expected an integer, got 'many'"),
    ({"name": "a/b"}, "name: 'a/b' is not a valid name"),
    ({"checkpoint": "best"}, "checkpoint: best needs evaluations during training to select from: set eval_every"),
    ({"checkpoint": "final", "eval_every": 5}, "checkpoint: expected last or best, got 'final'"),
    ({"absolute_metric": True, "eval_every": 5}, "absolute_metric: re-evaluates the best checkpoint: it needs "
                                                 "'checkpoint: best'"),
    ({"absolute_metric": "yes"}, "absolute_metric: expected true or false, got 'yes'"),
    ({"stat": "var"}, "stat: expected std, sem, iqm, got 'var'"),
    ({"algorithms": [{"name": "bc", "tag": "a/b"}]}, "algorithms[0].tag: tag 'a/b': use letters, digits"),
    ({"algorithms": [{"name": "bc", "tag": ""}]}, "algorithms[0].tag: expected a non-empty string"),
    ({"algorithms": [{"name": "bc", "tag": "x"}, {"name": "bc", "tag": "x", "steps": 3}]},
     "algorithms: label 'bc@x' appears more than once (rows are labelled name[ablation,variant]@tag; give each a "
     "distinct 'tag')"),
])
def test_suite_errors_name_the_file_and_the_key(tmp_path, change, message):
    path = tmp_path / "mysuite.yaml"
    path.write_text(yaml.safe_dump({**BASE, **change}))
    with pytest.raises(ValueError) as info:
        load_suite(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_missing_required_key_and_unknown_suite(tmp_path):
    data = {k: v for k, v in BASE.items() if k != "algorithms"}
    with pytest.raises(ValueError, match=r"x\.yaml: missing required key 'algorithms'"):
        parse_suite(data, "x.yaml")
    with pytest.raises(ValueError, match="unknown suite 'nope'.*quick"):
        load_suite("nope")
    with pytest.raises(FileNotFoundError, match="missing.yaml does not exist"):
        load_suite(tmp_path / "missing.yaml")


def test_suite_defaults_labels_and_paths(tmp_path):
    data = {**BASE, "datasets": [{"recipe": "tseng/grid_world/good", "scale": 0.5, "seed": 2},
                                 {"path": "data/mine.h5"}],
            "algorithms": ["bc", {"name": "distill", "ablation": "no_kl", "overrides": {"hidden": 8}, "steps": 7}]}
    suite = parse_suite(data, str(tmp_path / "s.yaml"))
    assert [d.label for d in suite.datasets] == ["grid_world_good", "mine"]
    assert suite.datasets[0].scale == 0.5 and suite.datasets[0].seed == 2
    assert suite.datasets[1].path == str((tmp_path / "data" / "mine.h5").resolve())  # relative to the suite file
    assert [a.label for a in suite.algorithms] == ["bc", "distill[no_kl]"]
    assert suite.algorithms[1].overrides == {"hidden": 8} and suite.algorithms[1].steps == 7
    assert suite.seeds == (0, 1, 2) and suite.eval_episodes == 32 and suite.eval_every == 0
    assert "tag" not in suite.algorithms[1].to_dict()  # untagged rows pin (bench.json) what they always did


def test_tags_tell_apart_rows_of_one_algorithm():
    data = {**BASE, "algorithms": ["distill", {"name": "distill", "tag": "long_teacher", "steps": 12},
                                   {"name": "distill", "ablation": "no_kl", "tag": "long_teacher"}]}
    suite = parse_suite(data, "s.yaml")
    assert [a.label for a in suite.algorithms] == ["distill", "distill@long_teacher", "distill[no_kl]@long_teacher"]
    assert suite.algorithms[1].to_dict()["tag"] == "long_teacher" and suite.algorithms[1].steps == 12


def test_parse_seeds():
    assert parse_seeds("5") == (0, 1, 2, 3, 4)
    assert parse_seeds("3,7") == (3, 7)
    assert parse_seeds([3, 7]) == (3, 7) and parse_seeds(2) == (0, 1)
    for bad in ("0", "x", "3,-1", "2,2", True):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_algorithms_resolve_through_the_registry_at_run_time():
    suite = parse_suite({**BASE, "algorithms": ["bc", "not_an_algo"]}, "s.yaml")  # parsing does not look
    with pytest.raises(ValueError, match=r"s\.yaml: algorithms\[1\]: unknown algorithm 'not_an_algo'; registered: .*"):
        check_algorithms(suite)
    suite = parse_suite({**BASE, "algorithms": [{"name": "distill", "ablation": "no_such"}]}, "s.yaml")
    with pytest.raises(ValueError, match=r"algorithms\[0\]: algorithm 'distill' has no ablation 'no_such'; known: "):
        check_algorithms(suite)
    suite = parse_suite({**BASE, "datasets": [{"recipe": "tseng/nope"}]}, "s.yaml")
    with pytest.raises(ValueError, match=r"datasets\[0\]\.recipe: unknown recipe 'tseng/nope'"):
        check_datasets(suite)


def test_builtin_suites_are_valid_and_state_their_cpu_scale():
    assert {"quick", "tseng-table1", "tseng-table2", "tseng-table3", "mabcq-matrix"} <= set(builtin_suites())
    for name in builtin_suites():
        suite = load_suite(name)
        assert suite.name == name and re.search(r"\bmin\b.* on 2 (idle )?cores", suite.cpu_scale), name
        check_algorithms(suite)
        check_datasets(suite)
    quick = load_suite("quick")
    assert [d.recipe for d in quick.datasets] == ["tseng/equal_space", "tseng/fill_in"]
    assert [a.label for a in quick.algorithms] == ["bc", "idt", "madt", "distill"] and len(quick.seeds) == 3
    assert "distill[no_kl]" in [a.label for a in load_suite("tseng-table3").algorithms]


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "suites").glob("*.yaml")),
                         ids=lambda path: path.stem)
def test_every_benchmark_suite_names_known_recipes_envs_and_algorithms(path):
    suite = load_suite(path)
    check_algorithms(suite)
    check_datasets(suite)


def test_bench_list_prints_each_builtin_with_its_scale():
    result = CliRunner().invoke(app, ["bench", "list"])
    assert result.exit_code == 0, result.output
    for name in builtin_suites():
        assert re.search(rf"^{re.escape(name)}$", result.output, re.M)
    assert len(re.findall(r"^  CPU scale: .*2 (idle )?cores", result.output, re.M)) == len(builtin_suites())


def test_bench_command_line_is_recorded_exactly():
    cmd = bench_runner.bench_command("quick", "3,7", 2, "ray", "auto", Path("out dir"), 2.0)
    assert cmd == ("offmarl bench run quick --seeds 3,7 --workers 2 --address auto --scale 2 --backend ray "
                   "--out 'out dir'")


# ---- tables and plots from hand-made eval.json files -----------------------------------------------------
def write_eval(root: Path, algo: str, dataset: str, seed: int, ret: float, steps: int = 100, episodes: int = 4,
               curve=None, **fields) -> Path:
    path = root / dataset / algo / f"seed{seed}" / "eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"schema_version": 1, "algo": algo, "dataset": dataset, "seed": seed, "return_mean": ret,
              "return_std": 0.5, "per_agent_return": [ret, ret], "episodes": episodes, "win_rate": None,
              "curve": curve if curve is not None else [[steps // 2, ret - 1.0, 0.1], [steps, ret, 0.1]],
              "protocol": {"checkpoint": "last", "target_return": None, "greedy": True, "steps": steps}, **fields}
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def hand_made(tmp_path):
    root = tmp_path / "runs" / "hand"
    # A on d1: 1, 2, 3 -> mean 2, std sqrt(2/3) = 0.8165; B on d1 (2 seeds): 4, 6 -> 5 ± 1 (best, fewer seeds)
    # A on d2: -1, -3 -> -2 ± 1 (2 seeds); B on d2: -2, -2, -2 -> -2 ± 0: equal at 2 decimals, both bold
    for seed, ret in enumerate([1.0, 2.0, 3.0]):
        write_eval(root, "A", "d1", seed, ret)
    for seed, ret in enumerate([4.0, 6.0]):
        write_eval(root, "B", "d1", seed, ret)
    for seed, ret in enumerate([-1.0, -3.0]):
        write_eval(root, "A", "d2", seed, ret)
    for seed in range(3):
        write_eval(root, "B", "d2", seed, -2.0)
    return root


def test_table_mean_std_bold_and_footer(hand_made):
    records = [EvalRecord.read(p) for p in sorted(hand_made.rglob("eval.json"))]
    table = build_table(records, algo_order=["B", "A"], dataset_order=["d2", "d1"])
    assert table.algos == ["B", "A"] and table.datasets == ["d2", "d1"]
    assert table.cells[("A", "d1")].mean == 2.0 and table.cells[("A", "d1")].std == pytest.approx((2 / 3) ** 0.5)
    md = to_markdown(table, "hand", ["offmarl bench run hand.yaml --out runs"])
    lines = md.splitlines()
    assert lines[2] == "| algorithm | d2 | d1 |"
    assert lines[4] == "| B | **-2.00 ± 0.00** | **5.00 ± 1.00** † |"
    assert lines[5] == "| A | **-2.00 ± 1.00** † | 2.00 ± 0.82 |"
    footer = "\n".join(lines[6:])
    assert "Seeds: 0, 1, 2 (up to 3 per cell)" in footer
    assert "Steps: 100 gradient steps per run" in footer and "Evaluation: 4 episodes per seed" in footer
    assert "protocol: last (the weights at the end of training" in footer
    assert "† fewer seeds than the fullest cell: B on d1: seeds 0, 1; A on d2: seeds 0, 1." in footer
    assert "Produced by: `offmarl bench run hand.yaml --out runs`" in footer

    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert [(r["algorithm"], r["dataset"]) for r in rows] == [("B", "d2"), ("B", "d1"), ("A", "d2"), ("A", "d1")]
    a_d1 = rows[3]
    assert float(a_d1["mean"]) == 2.0 and float(a_d1["std"]) == pytest.approx(0.816496580927726)
    assert a_d1["n_seeds"] == "3" and a_d1["seeds"] == "0 1 2" and a_d1["best"] == "False"
    assert rows[1]["best"] == "True" and rows[0]["best"] == "True" and rows[2]["best"] == "True"


def test_win_rate_section_and_csv_columns(tmp_path):
    # A on smax: 0.5, 1.0, 0.75 -> 75.0 ± 20.4 (lowest 50.0); B (2 seeds): 1.0, 1.0 -> the column's best
    # mean; C's absolute-metric run records no win rate (its recorded rate is not its score's); d1 reports none
    records = [EvalRecord.read(write_eval(tmp_path, "A", "smax", seed, 10.0, win_rate=rate,
                                          win_curve=[[50, rate / 2], [100, rate]]))
               for seed, rate in enumerate([0.5, 1.0, 0.75])]
    records += [EvalRecord.read(write_eval(tmp_path, "B", "smax", seed, 9.0, win_rate=1.0)) for seed in range(2)]
    records.append(EvalRecord.read(write_eval(
        tmp_path, "C", "smax", 0, 9.0, win_rate=0.25, absolute_return_mean=9.5, absolute_episodes=40,
        protocol={"checkpoint": "best", "absolute_metric": True, "steps": 100})))
    records.append(EvalRecord.read(write_eval(tmp_path, "A", "d1", 0, 1.0)))
    table = build_table(records, algo_order=["A", "B", "C"], dataset_order=["smax", "d1"])
    lines = win_rate_markdown(table).splitlines()
    assert lines[:4] == ["### Win rate", "", "| algorithm | smax |", "| --- | --- |"]
    assert lines[4] == "| A | 75.0 ± 20.4 (lowest 50.0) |"
    assert lines[5] == "| B | **100.0 ± 0.0 (lowest 100.0)** |"
    assert len(lines) == 8 and lines[7].startswith("Win rate (%): the share of each seed's evaluation episodes won")
    rows = {(r["algorithm"], r["dataset"]): r for r in csv.DictReader(io.StringIO(to_csv(table)))}
    assert float(rows[("A", "smax")]["win_rate"]) == 0.75
    assert float(rows[("A", "smax")]["win_rate_std"]) == pytest.approx(0.2041241452)
    assert rows[("C", "smax")]["win_rate"] == "" and rows[("A", "d1")]["win_rate"] == ""
    assert win_rate_markdown(build_table(records[-1:])) == ""
    steps, center, low, high = seed_curve(table.cells[("A", "smax")], wins=True)
    assert steps.tolist() == [50.0, 100.0] and center.tolist() == [0.375, 0.75]
    assert high[1] - center[1] == pytest.approx(0.2041241452)
    assert not len(seed_curve(table.cells[("B", "smax")], wins=True)[0])  # B's runs recorded no win curve
    names = {p.name for p in plot_curves(table, tmp_path / "plots")}
    assert names == {"curves_smax.png", "curves_d1.png", "wins_smax.png"}


def test_footer_lists_steps_per_algorithm_when_they_differ(tmp_path):
    records = [EvalRecord.read(write_eval(tmp_path, "A", "d1", 0, 1.0, steps=100)),
               EvalRecord.read(write_eval(tmp_path, "B", "d1", 0, 1.0, steps=300, episodes=8))]
    md = to_markdown(build_table(records))
    assert "Steps: A 100; B 300 gradient steps per run" in md and "Evaluation: A 4; B 8 episodes" in md


def test_footer_names_the_target_return_only_when_a_row_is_return_conditioned(tmp_path):
    def footer(*algos):
        records = [EvalRecord.read(write_eval(tmp_path / "-".join(algos), a, "d1", 0, 1.0)) for a in algos]
        return to_markdown(build_table(records))

    assert "target return" not in footer("ippo", "mappo", "qmix")  # online learners take no target
    assert "target return: the policy's default" in footer("ippo", "madt")
    assert "target return: the policy's default" in footer("bc", "distill[conventional]")
    assert "target return: the policy's default" in footer("distill's teacher")  # no registered name: kept
    assert "target return" not in footer("bc", "ma_cql[alpha_1]")
    assert "target return" not in footer("bc@top10", "sit[no_gat]@beta100")  # a tag is not part of the name
    assert "target return: the policy's default" in footer("bc@top10", "madt@long")


def test_duplicate_runs_and_bad_eval_json_are_named(tmp_path):
    a = write_eval(tmp_path / "x", "A", "d1", 0, 1.0)
    b = write_eval(tmp_path / "y", "A", "d1", 0, 2.0)
    with pytest.raises(ValueError, match="two eval.json files for A on d1, seed 0"):
        build_table([EvalRecord.read(a), EvalRecord.read(b)])
    bad = tmp_path / "bad" / "eval.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"algo": "A"}))
    with pytest.raises(ValueError, match=rf"{re.escape(str(bad))}: not an offmarl eval.json"):
        EvalRecord.read(bad)


def test_bench_table_writes_tables_and_plots(hand_made):
    result = CliRunner().invoke(app, ["bench", "table", str(hand_made)])
    assert result.exit_code == 0, result.output
    assert "| A | 2.00 ± 0.82 | **-2.00 ± 1.00** † |" in result.output  # no suite.json: sorted order
    assert (hand_made / "table.md").read_text().count("|") > 10 and (hand_made / "table.csv").exists()
    for name in ("curves_d1.png", "curves_d2.png", "bars.png"):
        data = (hand_made / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


def test_curve_band_is_over_seeds_at_common_steps(tmp_path):
    recs = [EvalRecord.read(write_eval(tmp_path, "A", "d", 0, 3.0, curve=[[10, 1.0, 0.0], [20, 3.0, 0.0]])),
            EvalRecord.read(write_eval(tmp_path, "A", "d", 1, 5.0,
                                       curve=[[10, 3.0, 0.0], [15, 9.0, 0.0], [20, 5.0, 0.0]]))]
    cell = build_table(recs).cells[("A", "d")]
    steps, mean, low, high = seed_curve(cell)
    assert steps.tolist() == [10, 20] and mean.tolist() == [2.0, 4.0] and (high - mean).tolist() == [1.0, 1.0]
    # the standard error: sample std (1.414 at both steps) over sqrt(2) seeds = 1
    steps, mean, low, high = seed_curve(cell, "sem")
    assert (mean - low).tolist() == pytest.approx([1.0, 1.0])
    # the IQM of two seeds is their mean; no interval below five seeds
    steps, center, low, high = seed_curve(cell, "iqm")
    assert center.tolist() == [2.0, 4.0] and np.isnan(low).all() and np.isnan(high).all()


def test_a_column_is_normalized_by_the_records_that_carry_its_normalization_returns(tmp_path):
    before = EvalRecord.read(write_eval(tmp_path, "A", "d", 0, 1.0))  # written before eval.json carried them
    after = EvalRecord.read(write_eval(tmp_path, "A", "d", 1, 2.0, random_return=0.0, reference_return=4.0))
    assert build_table([before]).normalization("d") is None
    table = build_table([before, after])
    assert table.normalization("d") == (0.0, 4.0)
    assert normalize(table).scores["A"]["d"].tolist() == [0.25, 0.5]  # (1 - 0) / 4, (2 - 0) / 4
    other = EvalRecord.read(write_eval(tmp_path, "B", "d", 0, 2.0, random_return=1.0, reference_return=4.0))
    with pytest.raises(ValueError, match=r"the runs on d disagree on its normalization returns .*\(1\.0, 4\.0\)"):
        build_table([before, after, other]).normalization("d")


# ---- running suites -------------------------------------------------------------------------------------------
@pytest.fixture
def offmarl_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFMARL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.timeout(240)
def test_a_failing_algorithm_is_reported_and_the_others_finish(tmp_path, offmarl_home):
    suite = tiny_suite(tmp_path / "fails.yaml", imports=["_bench_failing_algo"],
                       algorithms=[TINY_BC, {**TINY_BC, "name": "bench_fail"}])
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["bench", "run", str(suite), "--out", str(out), "--workers", "2"])
    assert result.exit_code == 1, result.output
    failed_dir = out / "tiny" / "equal_space" / "bench_fail" / "seed0"
    assert f"failed: bench_fail · equal_space · seed 0: RuntimeError: bench_fail: deliberate failure in update  " \
           f"({failed_dir / 'error.txt'})" in result.output
    error = (failed_dir / "error.txt").read_text()
    assert error.startswith("Traceback") and "deliberate failure in update" in error
    assert not (failed_dir / "eval.json").exists()
    assert (out / "tiny" / "equal_space" / "bc" / "seed0" / "eval.json").exists()
    assert re.search(r"^\| bc \| \*\*-?\d+\.\d\d ± 0\.00\*\* \|$", result.output, re.M)  # the table of the others
    assert "Incomplete: 1 of 2 runs have an eval.json." in result.output
    assert "1 failed" in result.output and (out / "tiny" / "table.md").exists()

    # the cause fixed, the same command retries the failed run only; its stale error.txt goes away
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_FAIL_FIXED", "1")
        again = CliRunner().invoke(app, ["bench", "run", str(suite), "--out", str(out), "--workers", "1"])
    assert again.exit_code == 0, again.output
    assert "1 already done, 1 to run" in again.output
    assert (failed_dir / "eval.json").exists() and not (failed_dir / "error.txt").exists()


@pytest.mark.timeout(240)
def test_a_tagged_row_runs_apart_and_is_tabled_under_its_label(tmp_path, offmarl_home):
    wide = {**TINY_BC, "tag": "wide", "overrides": {**TINY_BC["overrides"], "hidden": 16}}
    suite = tiny_suite(tmp_path / "tagged.yaml", algorithms=[TINY_BC, wide], eval_every=0)
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["bench", "run", str(suite), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    runs = out / "tiny" / "equal_space"
    assert json.loads((runs / "bc@wide" / "seed0" / "eval.json").read_text())["algo"] == "bc@wide"
    assert json.loads((runs / "bc@wide" / "seed0" / "config.json").read_text())["algo_config"]["hidden"] == 16
    assert json.loads((runs / "bc" / "seed0" / "config.json").read_text())["algo_config"]["hidden"] == 8
    main_table = (out / "tiny" / "table.md").read_text().split("| algorithm", 1)[1].split("\n\n")[0]
    rows = [line.split(" |")[0] for line in main_table.splitlines() if line.startswith("| bc")]
    assert rows == ["| bc", "| bc@wide"]


@pytest.mark.timeout(240)
def test_a_best_checkpoint_suite_scores_the_best_weights_and_says_so(tmp_path, offmarl_home):
    suite = tiny_suite(tmp_path / "best.yaml", checkpoint="best", eval_every=5)
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["bench", "run", str(suite), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    run = out / "tiny" / "equal_space" / "bc" / "seed0"
    protocol = json.loads((run / "eval.json").read_text())["protocol"]
    best_step = json.loads((run / "best" / "best.json").read_text())["step"]
    assert protocol["checkpoint"] == "best" and protocol["steps"] == best_step
    table = (out / "tiny" / "table.md").read_text()
    assert "protocol: best (the weights of the best evaluation during training" in table
    assert json.loads((run / "bench.json").read_text())["checkpoint"] == "best"


@pytest.mark.timeout(300)
def test_five_seeds_give_intervals_normalized_aggregates_and_probabilities_of_improvement(tmp_path, offmarl_home):
    wide = {**TINY_BC, "tag": "wide", "overrides": {**TINY_BC["overrides"], "hidden": 16}}
    suite = tiny_suite(tmp_path / "stats.yaml", algorithms=[TINY_BC, wide], seeds=5, checkpoint="best",
                       eval_every=10, absolute_metric=True, stat="sem")
    out, results = tmp_path / "runs", tmp_path / "results"
    ran = CliRunner().invoke(app, ["bench", "run", str(suite), "--out", str(out), "--workers", "2"])
    assert ran.exit_code == 0, ran.output
    # the absolute metric: the best checkpoint scored again on ten times the evaluation episodes
    record = json.loads((out / "tiny" / "equal_space" / "bc" / "seed0" / "eval.json").read_text())
    assert record["protocol"]["absolute_metric"] is True and record["protocol"]["checkpoint"] == "best"
    assert record["absolute_episodes"] == 10 * record["episodes"] == 20 and "absolute_return_std" in record
    assert record["random_return"] < record["reference_return"]  # the dataset card's (expert data)

    tabled = CliRunner().invoke(app, ["bench", "table", str(out / "tiny"), "--out", str(results)])
    assert tabled.exit_code == 0, tabled.output
    report = results / "tiny"
    table = (report / "table.md").read_text()
    assert "mean ± standard error over seeds" in table.split("### ")[0]  # the suite's stat: sem
    assert "protocol: absolute (Gorsane et al. 2022's absolute metric" in table
    assert "Evaluation: 20 episodes per seed" in table
    interval = r"-?\d+\.\d\d \[-?\d+\.\d\d, -?\d+\.\d\d\]"
    iqm_section = table.split("### IQM over seeds [95 % bootstrap CI]")[1].split("###")[0]
    assert re.search(rf"^\| bc \| (\*\*)?{interval}", iqm_section, re.M), iqm_section
    assert "### Mean ± std over seeds (the papers' metric)" in table
    aggregates = table.split("### Normalized scores across tasks")[1]
    assert re.search(rf"^\| bc@wide \| {interval} \| {interval} \| {interval} \| {interval} \| 1 \|$", aggregates,
                     re.M), aggregates
    rows = list(csv.DictReader(io.StringIO((report / "table.csv").read_text())))
    assert all(float(r["iqm_ci_low"]) <= float(r["iqm"]) <= float(r["iqm_ci_high"]) for r in rows)
    assert {r["protocol"] for r in rows} == {"absolute"}
    assert {r["metric"] for r in csv.DictReader(io.StringIO((report / "aggregate.csv").read_text()))} == {
        "IQM", "median", "mean", "optimality gap"}
    written = {name: (report / name).read_bytes() for name in ("aggregate.csv", "table.md", "aggregate.png",
                                                                "performance_profile.png", "sample_efficiency.png")}
    assert all(data[:8] == b"\x89PNG\r\n\x1a\n" for name, data in written.items() if name.endswith(".png"))
    again = CliRunner().invoke(app, ["bench", "table", str(report)])  # from the records alone: seeded bootstraps
    assert again.exit_code == 0 and {name: (report / name).read_bytes() for name in written} == written

    compared = CliRunner().invoke(app, ["bench", "compare", str(report), "bc", "bc@wide", "--out", str(tmp_path)])
    assert compared.exit_code == 0, compared.output
    found = {(r["x"], r["y"]): r for r in csv.DictReader(io.StringIO(
        (tmp_path / "probability_of_improvement.csv").read_text()))}
    forward, backward = found[("bc", "bc@wide")], found[("bc@wide", "bc")]
    for row in (forward, backward):
        assert 0 <= float(row["ci_low"]) <= float(row["probability"]) <= float(row["ci_high"]) <= 1
        assert f"| {row['x']} | {row['y']} | {float(row['probability']):.2f} | [" in compared.output
    assert float(forward["probability"]) + float(backward["probability"]) == pytest.approx(1.0)
    unknown = CliRunner().invoke(app, ["bench", "compare", str(report), "bc", "madt"])
    assert unknown.exit_code == 2 and "error: unknown algorithm 'madt'; the runs have: bc, bc@wide" in unknown.output

    paired = CliRunner().invoke(app, ["bench", "paired", str(report), "bc@wide:bc", "--out", str(tmp_path)])
    assert paired.exit_code == 0, paired.output
    (row,) = csv.DictReader(io.StringIO((tmp_path / "paired.csv").read_text()))
    runs = out / "tiny" / "equal_space"
    returns = {(algo, seed): json.loads((runs / algo / f"seed{seed}" / "eval.json").read_text())["absolute_return_mean"]
               for algo in ("bc", "bc@wide") for seed in range(5)}  # the protocol's score: the absolute metric
    by_hand = np.array([returns[("bc@wide", s)] - returns[("bc", s)] for s in range(5)])
    assert row["seeds"] == "0 1 2 3 4" and row["task"] == "equal_space"
    np.testing.assert_allclose([float(d) for d in row["differences"].split()], by_hand)
    half = 2.7764 * by_hand.std(ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert float(row["mean"]) == pytest.approx(by_hand.mean())
    assert float(row["ci_low"]) == pytest.approx(by_hand.mean() - half, rel=1e-4)
    assert int(row["x_higher"]) == int((by_hand > 0).sum())
    assert f"| bc@wide − bc | equal_space | 0, 1, 2, 3, 4 | {by_hand[0]:+.2f}," in paired.output
    malformed = CliRunner().invoke(app, ["bench", "paired", str(report), "bc@wide"])
    assert malformed.exit_code == 2 and "error: a pair is X:Y (two row labels of the table), got 'bc@wide'" in (
        malformed.output)

    # a suite of new rows pairs with an earlier suite's runs (--with) instead of repeating them
    wide_only, other = tmp_path / "wide_only", tmp_path / "other"
    for folder, drop in ((wide_only, "bc"), (other, "bc@wide")):
        shutil.copytree(report / "records", folder / "records")
        shutil.rmtree(folder / "records" / "equal_space" / drop)
    combined = CliRunner().invoke(app, ["bench", "paired", str(wide_only), "bc@wide:bc", "--with", str(other),
                                        "--out", str(tmp_path / "combined")])
    assert combined.exit_code == 0, combined.output
    assert (tmp_path / "combined" / "paired.csv").read_text() == (tmp_path / "paired.csv").read_text()
    record = other / "records" / "equal_space" / "bc" / "seed0.json"
    data = json.loads(record.read_text())
    data["random_return"] = data["random_return"] + 1.0  # as if trained on other data
    record.write_text(json.dumps(data))
    mixed = CliRunner().invoke(app, ["bench", "paired", str(wide_only), "bc@wide:bc", "--with", str(other)])
    assert mixed.exit_code == 2 and "disagree on its normalization returns" in mixed.output, mixed.output
    data["random_return"] -= 1.0
    data["absolute_episodes"] = data["absolute_episodes"] + 1  # evaluated on more episodes
    record.write_text(json.dumps(data))
    mixed = CliRunner().invoke(app, ["bench", "paired", str(wide_only), "bc@wide:bc", "--with", str(other)])
    assert mixed.exit_code == 2 and "were evaluated differently (episodes, protocol, steps unit)" in mixed.output


def test_runs_are_planned_seed_by_seed(tmp_path, offmarl_home):
    """A bench stopped part-way leaves every cell with the same number of seeds (seeds outermost)."""
    suite = load_suite(tiny_suite(tmp_path / "order.yaml", seeds=2,
                                  algorithms=[TINY_BC, {"name": "idt", "overrides": {"hidden": 8}}]))
    files = bench_runner.prepare_datasets(suite, lambda _: None)
    tasks = bench_runner.plan_runs(suite, tmp_path / "runs" / "tiny", suite.seeds, 1.0, files)
    assert [(t.algo.label, t.seed) for t in tasks] == [("bc", 0), ("idt", 0), ("bc", 1), ("idt", 1)]
    first = bench_runner.first_runs(tasks, suite, ["idt"])  # e.g. the row a paired comparison waits for
    assert [(t.algo.label, t.seed) for t in first] == [("idt", 0), ("idt", 1), ("bc", 0), ("bc", 1)]
    dataset = suite.datasets[0].label
    assert bench_runner.first_runs(tasks, suite, ["idt", dataset]) == first  # algorithm and dataset: both hold
    assert bench_runner.first_runs(tasks, suite, [dataset]) == tasks
    with pytest.raises(ValueError, match="--first: 'madt' is neither an algorithm nor a dataset label of suite"):
        bench_runner.first_runs(tasks, suite, ["madt"])


def test_a_started_run_is_pinned_to_its_settings(tmp_path, offmarl_home):
    suite = load_suite(tiny_suite(tmp_path / "pin.yaml"))
    files = bench_runner.prepare_datasets(suite, lambda _: None)
    (task,) = bench_runner.plan_runs(suite, tmp_path / "runs" / "tiny", suite.seeds, 1.0, files)
    Path(task.run_dir, "checkpoints").mkdir(parents=True)
    (Path(task.run_dir) / "bench.json").write_text(json.dumps(task.pin()))
    bench_runner.plan_runs(suite, tmp_path / "runs" / "tiny", suite.seeds, 1.0, files)  # same settings: fine
    edited = load_suite(tiny_suite(tmp_path / "pin.yaml", steps=40))
    bench_runner.plan_runs(edited, tmp_path / "runs" / "tiny", edited.seeds, 1.0, files)  # nothing to reuse yet
    Path(task.run_dir, "checkpoints", "last.pt").write_bytes(b"")  # now the run has progress to continue
    expected = rf"{re.escape(task.run_dir)} was started with steps = 20, the suite now asks 40"
    with pytest.raises(ValueError, match=expected):
        bench_runner.plan_runs(edited, tmp_path / "runs" / "tiny", edited.seeds, 1.0, files)
    assert suite_dir_name("tiny", 2.0) == "tiny-x2" and suite_dir_name("tiny", 1.0) == "tiny"


@pytest.mark.timeout(240)
def test_a_lost_runs_directory_resumes_from_its_results_folder(tmp_path, offmarl_home):
    """--restore: the runs a results folder recorded are not retrained; only runs of the same settings count."""
    suite = tiny_suite(tmp_path / "restore.yaml", seeds=2, eval_every=0)
    lost, results = tmp_path / "lost", tmp_path / "results"
    assert CliRunner().invoke(app, ["bench", "run", str(suite), "--out", str(lost), "--workers", "1"]).exit_code == 0
    assert CliRunner().invoke(app, ["bench", "table", str(lost / "tiny"), "--out", str(results)]).exit_code == 0
    recorded = {seed: (results / "tiny" / "records" / "equal_space" / "bc" / f"seed{seed}.json").read_bytes()
                for seed in (0, 1)}
    shutil.rmtree(lost)

    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["bench", "run", str(suite), "--out", str(out), "--workers", "1",
                                      "--seeds", "3", "--restore", str(results / "tiny")])
    assert result.exit_code == 0, result.output
    assert "restored 2 finished run(s)" in result.output and "2 already done, 1 to run" in result.output
    runs = out / "tiny" / "equal_space" / "bc"
    assert {seed: (runs / f"seed{seed}" / "eval.json").read_bytes() for seed in (0, 1)} == recorded
    assert not (runs / "seed0" / "config.json").exists()  # restored, not retrained
    assert json.loads((runs / "seed2" / "bench.json").read_text()) == json.loads((runs / "seed0" / "bench.json")
                                                                                 .read_text()) | {"seed": 2}
    assert len(list((out / "tiny" / "records").rglob("seed*.json"))) == 3  # the table has all three
    commands = json.loads((out / "tiny" / "suite.json").read_text())["commands"]
    assert commands == [f"offmarl bench run {suite} --workers 1 --out {lost}",  # the restored runs' command first
                        f"offmarl bench run {suite} --seeds 3 --workers 1 --out {out}"]

    edited = tiny_suite(tmp_path / "restore.yaml", seeds=2, eval_every=0, steps=40)
    refused = CliRunner().invoke(app, ["bench", "run", str(edited), "--out", str(tmp_path / "other"),
                                       "--restore", str(results / "tiny")])
    assert refused.exit_code != 0
    assert f"--restore: {results / 'tiny' / 'records' / 'equal_space' / 'bc' / 'seed0.json'} was run with steps = " \
           "20, the suite now asks 40" in " ".join(refused.output.split())
    missing = CliRunner().invoke(app, ["bench", "run", str(suite), "--out", str(tmp_path / "other"),
                                       "--restore", str(tmp_path)])
    assert missing.exit_code != 0 and f"--restore: {tmp_path} is not a results folder" in missing.output


def test_a_full_disk_fails_one_run_with_one_line_and_the_next_bench_resumes_it(tmp_path, offmarl_home, monkeypatch):
    suite = load_suite(tiny_suite(tmp_path / "full.yaml", eval_every=0))
    files = bench_runner.prepare_datasets(suite, lambda _: None)
    (task,) = bench_runner.plan_runs(suite, tmp_path / "runs" / "tiny", suite.seeds, 1.0, files)
    checkpoint = Path(task.run_dir) / "checkpoints" / "last.pt"
    real_save = torch.save

    def save_until_the_disk_fills(obj, f, *rest, **kwargs):
        if ".last.pt." in str(getattr(f, "name", f)) and obj["step"] == 20:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *rest, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", save_until_the_disk_fills)
        outcome = bench_runner.execute_run(task)
    assert outcome.status == bench_runner.STATUS_FAILED
    assert outcome.error.startswith(f"DiskFullError: {checkpoint}: not written, the disk is full"), outcome.error
    assert torch.load(checkpoint, weights_only=True)["step"] == 10 and (Path(task.run_dir) / "error.txt").exists()
    assert not [p for p in Path(task.run_dir).rglob(".*") if ".tmp" in p.name]

    outcome = bench_runner.execute_run(task)  # space freed: the next bench resumes the run
    assert outcome.status == bench_runner.STATUS_DONE and not (Path(task.run_dir) / "error.txt").exists()
    assert [r["step"] for r in json.loads((Path(task.run_dir) / "config.json").read_text())["resumes"]] == [10]


BENCH = "import sys; from offmarl.cli import main; sys.argv[0] = 'offmarl'; main()"


def start_bench(suite: Path, out: Path, env: dict) -> subprocess.Popen:
    args = ["bench", "run", str(suite), "--out", str(out), "--workers", "1"]
    return subprocess.Popen([sys.executable, "-c", BENCH, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(300)
def test_sigkill_mid_suite_then_rerun_loses_and_duplicates_nothing(tmp_path, offmarl_home):
    steps = 400
    suite = tiny_suite(tmp_path / "kill.yaml", seeds=3, steps=steps, eval_every=0, checkpoint_every=20)
    out = tmp_path / "runs"
    env = {**os.environ, "OFFMARL_HOME": str(offmarl_home)}
    runs = [out / "tiny" / "equal_space" / "bc" / f"seed{k}" for k in range(3)]
    bench = start_bench(suite, out, env)
    deadline = time.monotonic() + 180  # generous: on a loaded machine spawning the worker alone took > 60 s
    # kill when one run is finished and the next has a checkpoint but no eval.json (half done)
    while not (runs[0].joinpath("eval.json").exists() and runs[1].joinpath("checkpoints", "last.pt").exists()):
        assert bench.poll() is None, bench.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the bench made no progress within 180 s"
        time.sleep(0.02)
    bench.send_signal(signal.SIGKILL)
    bench.communicate()
    time.sleep(1.0)  # the worker's parent watchdog exits within 0.25 s
    assert not runs[1].joinpath("eval.json").exists(), "run 1 finished before the kill; raise steps"
    first_eval = runs[0].joinpath("eval.json").stat().st_mtime_ns
    killed_at = torch.load(runs[1] / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert 0 < killed_at < steps

    # writes killed meanwhile left temporaries; another process's write into the suite directory is under way
    stale = [leave_a_killed_write(path) for path in (runs[1] / "checkpoints" / "last.pt", out / "tiny" / "suite.json")]
    with atomic_path(out / "tiny" / "notes.md") as in_flight:
        in_flight.write_text("a live writer's file")
        again = start_bench(suite, out, env)
        stdout, stderr = again.communicate(timeout=200)
        assert in_flight.exists()  # the bench removed only the temporaries of writers that are gone
    assert again.returncode == 0, stderr[-3000:]
    # the two planted ones, plus any the SIGKILL itself caught mid-write (a real killed writer's file)
    where = re.escape(str(out / "tiny"))
    removed = re.search(rf"removed (\d+) temporary file\(s\) that killed writers left in {where}", stdout)
    assert removed and int(removed[1]) >= 2, stdout[-3000:]
    assert not any(path.exists() for path in stale) and not [p for p in out.rglob(".*") if ".tmp" in p.name]
    assert "1 already done, 2 to run" in stdout
    assert runs[0].joinpath("eval.json").stat().st_mtime_ns == first_eval  # not re-run
    assert sorted(out.rglob("eval.json")) == [r / "eval.json" for r in runs]
    resumed = json.loads(runs[1].joinpath("config.json").read_text())
    assert [r["step"] for r in resumed.get("resumes", [])] == [killed_at]  # continued from its checkpoint
    for run in runs:
        with open(run / "metrics.csv", newline="") as f:
            metric_steps = [int(row["step"]) for row in csv.DictReader(f)]
        assert metric_steps == sorted(set(metric_steps)) and metric_steps[-1] == steps, run
        assert json.loads(run.joinpath("eval.json").read_text())["protocol"]["steps"] == steps
    assert "| bc |" in stdout and (out / "tiny" / "table.md").exists()


@pytest.mark.timeout(240)
def test_benches_under_two_out_roots_at_once_build_their_shared_dataset_once(tmp_path, offmarl_home):
    suite = tiny_suite(tmp_path / "shared.yaml", eval_every=0)
    env = {**os.environ, "OFFMARL_HOME": str(offmarl_home)}
    benches = [start_bench(suite, tmp_path / root, env) for root in ("out_a", "out_b")]
    outputs = [bench.communicate(timeout=200) for bench in benches]
    for bench, (stdout, stderr) in zip(benches, outputs):
        assert bench.returncode == 0, stderr[-3000:]
    found = [line for stdout, _ in outputs for line in stdout.splitlines() if line.startswith("dataset equal_space: ")
             and " -> " in line]  # "... -> FILE (built in 0.5 s)" or "... -> FILE (cached)"
    assert sorted(line.rsplit(" (", 1)[1].split()[0].rstrip(")") for line in found) == ["built", "cached"], found
    assert [p.name for p in offmarl_home.rglob("*.h5")] == ["tseng__equal_space__scripted__seed0__scale0.01.h5"]
    for root in ("out_a", "out_b"):
        assert (tmp_path / root / "tiny" / "equal_space" / "bc" / "seed0" / "eval.json").exists()


@pytest.mark.timeout(240)
def test_an_online_algorithm_runs_on_the_env_entries_and_an_offline_one_on_the_datasets(tmp_path, offmarl_home):
    tiny_ippo = {"name": "ippo", "frames": 640,
                 "overrides": {"hidden": 8, "rollout_length": 10, "chunk_length": 5, "ppo_epochs": 1}}
    suite = tiny_suite(tmp_path / "mixed.yaml", eval_every=0,
                       datasets=[{"recipe": "tseng/equal_space", "scale": 0.01},
                                 {"env": "matrix_game", "num_envs": 4, "label": "game"}],
                       algorithms=[TINY_BC, tiny_ippo])
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["bench", "run", str(suite), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "tiny" / "suite.json").read_text())
    assert sorted(map(tuple, record["runs"])) == [("equal_space", "bc", 0), ("game", "ippo", 0)]
    online = json.loads((out / "tiny" / "game" / "ippo" / "seed0" / "eval.json").read_text())
    assert online["dataset"] is None and online["source"] == "game" and online["env"] == "matrix_game"
    assert online["protocol"]["steps_unit"] == "frames" and online["protocol"]["steps"] == 640
    cells = {(row["algorithm"], row["dataset"]) for row in csv.DictReader(io.StringIO(
        (out / "tiny" / "table.csv").read_text()))}
    assert cells == {("bc", "equal_space"), ("ippo", "game")}
    assert "Incomplete" not in (out / "tiny" / "table.md").read_text()  # the other pairs are not missing runs


@pytest.mark.timeout(300)
def test_dataset_and_env_learners_run_on_datasets_and_on_env_entries_with_demonstrations(tmp_path, offmarl_home):
    """dm2 / ma_gail learn from a dataset and the env: on a dataset entry (in its env) and on an env entry that
    gives demonstrations (beside the online learners, in the same column); an env entry without demonstrations
    gets no run of theirs. Their budget is env frames."""
    from offmarl.algos import get_algo_class

    def tiny(name):
        return {"name": name, "frames": 96, "overrides": {**get_algo_class(name).contract_overrides,
                                                          "demo_episodes": 4}}

    tiny_ippo = {"name": "ippo", "frames": 96,
                 "overrides": {"hidden": 8, "rollout_length": 12, "chunk_length": 6, "ppo_epochs": 1}}
    data = {"recipe": "tseng/equal_space", "scale": 0.005}
    suite = tiny_suite(tmp_path / "imitation.yaml", eval_every=0, checkpoint_every=48,
                       datasets=[{**data, "label": "demos"},
                                 {"env": "equal_space", "num_envs": 4, "label": "es", "demonstrations": data},
                                 {"env": "equal_space", "num_envs": 4, "label": "bare"}],
                       algorithms=[tiny("dm2"), tiny("ma_gail"), tiny_ippo])
    parsed = load_suite(suite)
    assert parsed.datasets[1].demonstrations.recipe == "tseng/equal_space" and parsed.datasets[2].data is None
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["bench", "run", str(suite), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "tiny" / "suite.json").read_text())
    assert sorted(map(tuple, record["runs"])) == [("bare", "ippo", 0), ("demos", "dm2", 0), ("demos", "ma_gail", 0),
                                                  ("es", "dm2", 0), ("es", "ippo", 0), ("es", "ma_gail", 0)]
    for column in ("demos", "es"):
        run = json.loads((out / "tiny" / column / "dm2" / "seed0" / "eval.json").read_text())
        assert run["env"] == "equal_space" and run["source"] == column
        assert run["protocol"]["steps_unit"] == "frames" and run["protocol"]["steps"] >= 96
    table = (out / "tiny" / "table.md").read_text()  # the table says plainly which rows interacted with the env
    assert "Steps of dm2, ma_gail, ippo count environment frames: they interact with the environment" in table
    assert "environment frames per run" in table and "gradient steps" not in table  # no row learned offline


def test_demonstrations_belong_to_env_entries():
    with pytest.raises(ValueError, match=r"datasets\[0\].demonstrations: applies to env entries only"):
        parse_suite({**BASE, "datasets": [{"recipe": "tseng/fill_in", "demonstrations": {"recipe": "x"}}]}, "s.yaml")
    with pytest.raises(ValueError, match=r"datasets\[0\].demonstrations: expected a mapping with 'recipe' or 'path'"):
        parse_suite({**BASE, "datasets": [{"env": "fill_in", "demonstrations": "tseng/fill_in"}]}, "s.yaml")
    suite = parse_suite({**BASE, "datasets": [{"env": "fill_in", "demonstrations": {"recipe": "nope/x"}}],
                         "algorithms": ["dm2"], "frames": 10}, "s.yaml")
    with pytest.raises(ValueError, match=r"s.yaml: datasets\[0\].demonstrations.recipe: unknown recipe 'nope/x'"):
        check_datasets(suite)


def test_an_algorithm_may_run_fewer_seeds_than_the_suite(tmp_path, offmarl_home):
    """``seeds: N`` on an algorithm entry: it runs the first N of the bench's seeds, the others all of them."""
    suite = load_suite(tiny_suite(tmp_path / "seeds.yaml", seeds=3,
                                  algorithms=[TINY_BC, {**TINY_BC, "tag": "few", "seeds": 2}]))
    files = bench_runner.prepare_datasets(suite, lambda _: None)
    tasks = bench_runner.plan_runs(suite, tmp_path / "out", [4, 5, 6], 1.0, files)
    assert sorted((t.algo.label, t.seed) for t in tasks) == [("bc", 4), ("bc", 5), ("bc", 6), ("bc@few", 4),
                                                             ("bc@few", 5)]
    assert "seeds" not in tasks[-1].pin()["algorithm"]
    with pytest.raises(ValueError, match=r"algorithms\[0\].seeds: must be >= 1, got 0"):
        parse_suite({**BASE, "algorithms": [{"name": "bc", "seeds": 0}]}, "s.yaml")


def test_a_suite_of_interacting_learners_on_datasets_needs_frames_only():
    """Dataset entries with frames but no steps parse (their dm2 / ma_gail runs count frames); an offline algorithm
    there is told to give steps."""
    data = {k: v for k, v in BASE.items() if k != "steps"}
    suite = parse_suite({**data, "algorithms": ["ma_gail", "bc"], "frames": 1000}, "s.yaml")
    assert bench_runner.resolve_steps(suite, suite.algorithms[0], "fill_in", None, 1.0, True) == 1000
    with pytest.raises(ValueError, match="algorithm bc learns offline: give the suite's 'steps'"):
        bench_runner.resolve_steps(suite, suite.algorithms[1], "fill_in", None, 1.0, False)
