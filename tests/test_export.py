"""``offmarl bench export DIR --format marl-eval``: the runs' evaluations in the JSON layout marl-eval reads.

The layout is the one marl-eval's README ("Data Structure for Raw Experiment data"), its ``JsonLogger`` and its
``data_process_pipeline`` use: environment -> task -> algorithm -> run -> ``step_<i>`` (``step_count`` and a list
per metric) plus ``absolute_metrics``. marl-eval itself is not installed by ``make test``;
:func:`read_as_marl_eval` walks a document the way its pipeline does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_bench import tiny_suite
from typer.testing import CliRunner

from offmarl.bench.export import env_family, marl_eval_export
from offmarl.cli import app


def write_run(suite: Path, task: str, algo: str, seed: int, curve: list, *, env: str, online: bool = False,
              **fields) -> Path:
    """A run directory with a hand-written eval.json; an offline run's environment is in its config.json's card."""
    run = suite / task / algo / f"seed{seed}"
    run.mkdir(parents=True)
    final = curve[-1][1] if curve else None
    record = {"schema_version": 1, "algo": algo, "dataset": None if online else task, "source": task, "seed": seed,
              "return_mean": final, "return_std": 0.0, "episodes": 2, "win_rate": None, "curve": curve,
              "protocol": {"checkpoint": "last", "steps": curve[-1][0] if curve else 5,
                           "steps_unit": "frames" if online else "updates"}, **fields}
    if online:
        record["env"] = env
    (run / "eval.json").write_text(json.dumps(record))
    (run / "config.json").write_text(json.dumps({"env_source": {"env_name": env, "env_kwargs": {}}} if online else
                                                {"dataset": {"env_name": env, "env_kwargs": {}}}))
    return run


@pytest.fixture
def suite(tmp_path):
    """Offline bc (2 seeds) and distill[no_kl] on a native dataset and a SMAX one, online mappo on SMAX (with win
    rates) and on MPE, and bc on imported data (not evaluated)."""
    root = tmp_path / "runs" / "mixed"
    write_run(root, "fill_in_good", "bc", 0, [[100, 1.0, 0.5], [200, 2.0, 0.5]], env="fill_in",
              returns=[[1.0, 3.0], [2.0, 2.0]])
    write_run(root, "fill_in_good", "bc", 1, [[100, 0.5, 0.1], [200, 1.5, 0.2]], env="fill_in")
    write_run(root, "2s3z_good", "distill[no_kl]", 0, [[200, 4.0, 1.0]], env="smac_2s3z", win_rate=0.5,
              returns=[[4.0] * 5, [4.0] * 5])
    write_run(root, "smac_2s3z", "mappo", 0, [[1000, 3.0, 1.0], [2000, 8.0, 2.0]], env="smac_2s3z", online=True,
              win_rate=0.75, win_curve=[[1000, 0.25], [2000, 0.75]], returns=[[8.0] * 5, [8.0] * 5])
    write_run(root, "mpe_cn_3ls3l", "mappo", 0, [[1000, -9.0, 1.0]], env="mpe_cn_3ls3l", online=True,
              absolute_return_mean=-8.5)
    write_run(root, "og_3m", "bc", 0, [], env="external:3m", skipped="offmarl has no environment for external:3m")
    return root


def read_as_marl_eval(document: dict) -> list[tuple[str, str, str, str, str]]:
    """Walk ``document`` as marl-eval's ``data_process_pipeline`` does (keys lower-cased; every step's metrics
    lists of numbers; ``step_count`` in every step but ``absolute_metrics``, which every run has); returns
    (environment, task, algorithm, run, step) of every step."""
    lowered = json.loads(json.dumps(document).lower())
    assert lowered == document  # offmarl's keys are lower case already: nothing is merged or renamed
    steps = []
    for env, tasks in lowered.items():
        for task, algorithms in tasks.items():
            for algo, runs in algorithms.items():
                assert "," not in algo
                for run, logged in runs.items():
                    assert "absolute_metrics" in logged and "step_count" not in logged["absolute_metrics"]
                    for step, metrics in logged.items():
                        if step != "absolute_metrics":
                            assert isinstance(metrics.pop("step_count"), int)
                        for values in metrics.values():
                            assert isinstance(values, list) and all(isinstance(v, float) for v in values)
                            np.mean(values)  # what the pipeline computes of each
                        steps.append((env, task, algo, run, step))
    return steps


def test_the_document_maps_offmarl_names_onto_marl_eval_levels(suite):
    export = marl_eval_export(suite)
    assert export.document == {
        "native": {"fill_in_good": {"bc": {
            "seed_0": {"step_0": {"step_count": 100, "mean_episode_return": [1.0]},
                       "step_1": {"step_count": 200, "mean_episode_return": [2.0]},
                       "absolute_metrics": {"mean_episode_return": [2.0, 2.0]}},  # per episode, averaged over agents
            "seed_1": {"step_0": {"step_count": 100, "mean_episode_return": [0.5]},
                       "step_1": {"step_count": 200, "mean_episode_return": [1.5]},
                       "absolute_metrics": {"mean_episode_return": [1.5]}}}}},  # no per-episode returns recorded
        "smax": {
            # offline: no win rate at the curve's evaluations, so none at all (every step has the same metrics)
            "2s3z_good": {"distill[no_kl]": {"seed_0": {"step_0": {"step_count": 200, "mean_episode_return": [4.0]},
                                                         "absolute_metrics": {"mean_episode_return": [4.0, 4.0]}}}},
            "smac_2s3z": {"mappo": {"seed_0": {
                "step_0": {"step_count": 1000, "mean_episode_return": [3.0], "win_rate": [0.25]},
                "step_1": {"step_count": 2000, "mean_episode_return": [8.0], "win_rate": [0.75]},
                "absolute_metrics": {"mean_episode_return": [8.0, 8.0], "win_rate": [0.75]}}}}},
        "mpe": {"mpe_cn_3ls3l": {"mappo": {"seed_0": {
            "step_0": {"step_count": 1000, "mean_episode_return": [-9.0]},
            "absolute_metrics": {"mean_episode_return": [-8.5]}}}}},  # the absolute-metric evaluation's
    }
    assert len(read_as_marl_eval(export.document)) == 2 * 3 + 2 + 3 + 2  # steps and absolute metrics of 5 runs
    assert export.skipped == [(suite / "og_3m" / "bc" / "seed0" / "eval.json",
                               "offmarl has no environment for external:3m")]


def test_the_command_writes_the_document_and_names_what_it_left_out(suite, tmp_path):
    result = CliRunner().invoke(app, ["bench", "export", str(suite), "--format", "marl-eval",
                                      "--out", str(tmp_path / "marl_eval.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "marl_eval.json").read_text()) == marl_eval_export(suite).document
    assert f"not exported: {suite / 'og_3m' / 'bc' / 'seed0'}: offmarl has no environment" in result.output
    result = CliRunner().invoke(app, ["bench", "export", str(suite), "--format", "csv", "--out", "x.json"])
    assert result.exit_code == 2 and "--format must be one of marl-eval, got 'csv'" in result.output


@pytest.mark.parametrize("algo, message", [("bc,x", "has a comma"), ("BC", "'bc' and 'BC' differ only in case")])
def test_labels_marl_eval_would_merge_or_refuse_are_errors(suite, algo, message):
    write_run(suite, "fill_in_good", algo, 0, [[200, 1.0, 0.0]], env="fill_in")
    with pytest.raises(ValueError, match=message):
        marl_eval_export(suite)


def test_env_families():
    assert [env_family(name) for name in ("fill_in", "matrix_game", "mpe_pp_3p1p", "smac_8m", "mamujoco_ant_2x4",
                                          "highway", "external:smac_v1/3m")] == [
        "native", "native", "mpe", "smax", "mamujoco", "highway", "external"]


def test_a_real_tiny_bench_exports(tmp_path):
    """bc on the tiny Equal Space recipe, evaluated every 10 of its 20 gradient steps on 2 episodes."""
    result = CliRunner().invoke(app, ["bench", "run", str(tiny_suite(tmp_path / "tiny.yaml")), "--out",
                                      str(tmp_path / "runs"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    suite_dir = tmp_path / "runs" / "tiny"
    run = json.loads(next(suite_dir.rglob("eval.json")).read_text())
    document = marl_eval_export(suite_dir).document
    assert list(document) == ["native"] and list(document["native"]) == ["equal_space"]
    logged = document["native"]["equal_space"]["bc"]["seed_0"]
    assert [logged[f"step_{i}"]["step_count"] for i in range(2)] == [10, 20]  # gradient steps
    assert logged["step_1"]["mean_episode_return"] == [pytest.approx(run["return_mean"])]
    absolute = logged["absolute_metrics"]["mean_episode_return"]
    assert len(absolute) == 2 and np.mean(absolute) == pytest.approx(run["return_mean"])
    assert len(read_as_marl_eval(document)) == 3
