"""The experiment API (``offmarl.train.experiment``): offline and online runs through one seam, records
instead of prints, the one run loader, one-line errors, and an online run's exact resume."""

from __future__ import annotations

import json

import _online_learner
import _toy_env
import numpy as np
import pytest
import torch
from _run_files import assert_same_run_files
from typer.testing import CliRunner

from offmarl.algos import base
from offmarl.algos.base import load_algo
from offmarl.cli import app
from offmarl.collect.recipes import env_normalization
from offmarl.data.io import save_dataset
from offmarl.train.experiment import Experiment, evaluate_run, load_run, run_experiment

FRAMES = 16 * 2 * 24  # 24 updates of 16 two-step games


@pytest.fixture
def online_learner(monkeypatch):
    """Register the test-only tabular policy gradient for one test (the registry stays the library's)."""
    monkeypatch.setitem(base._ALGOS, _online_learner.NAME, _online_learner.TabularPG)
    return _online_learner.NAME


def online(tmp_path, name, **kw) -> Experiment:
    settings = dict(algo=name, env="matrix_game", num_envs=16, steps=FRAMES, out=tmp_path / "run", seed=1,
                    eval_episodes=4, eval_every=128, checkpoint_every=96, progress=False)
    return Experiment(**{**settings, **kw})


def test_an_online_learner_trains_on_env_frames_and_learns(tmp_path, online_learner, capsys):
    record = run_experiment(online(tmp_path, online_learner))
    assert capsys.readouterr().out == ""  # the library returns records; it never prints
    assert record["steps"] == FRAMES and record["label"] == online_learner and record["source_label"] == "matrix_game"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["env_source"] == {"env_name": "matrix_game", "env_kwargs": {}, "num_envs": 16}
    # evaluations at frames 128, 256, ... (crossed boundaries, as frames advance 32 per update), then the end
    assert [int(point[0]) for point in record["eval"]["curve"]] == [128, 256, 384, 512, 640, 768]
    # uniform play scores 3.25; the independent learners settle on a pure equilibrium (payoff 5 or 6)
    assert record["eval"]["return_mean"] >= 5.0
    # the env's normalization returns, measured once: uniform play (3.25 expected) and the scripted expert
    measured = env_normalization("matrix_game")
    assert record["eval"]["random_return"] == measured["random_return"] == pytest.approx(3.25, abs=0.3)
    assert record["eval"]["reference_return"] == measured["reference_return"] > 5.0
    algo, steps = load_run(tmp_path / "run")
    assert steps == FRAMES and torch.equal(algo.logits, torch.load(tmp_path / "run" / "model" / "algo.pt",
                                                                   weights_only=True)["logits"])
    assert evaluate_run(tmp_path / "run", episodes=4)["return_mean"] == record["eval"]["return_mean"]


def test_the_cli_trains_an_online_learner_with_env(tmp_path, online_learner):
    result = CliRunner().invoke(app, ["train", online_learner, "--env", "matrix_game", "--env-set",
                                      "payoff=[[1, 2], [3, 9]]", "--num-envs", "16", "--steps", str(FRAMES),
                                      "--out", str(tmp_path / "run"), "--eval-episodes", "2", "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"{online_learner} on matrix_game, seed 0: {FRAMES} steps" in result.output
    assert json.loads((tmp_path / "run" / "eval.json").read_text())["return_mean"] == 9.0


@pytest.mark.parametrize("kw, message", [
    ({"env": None}, "learns online: name its environment with --env"),
    ({"dataset": "x.h5"}, "learns online from --env; it takes no --dataset"),
    ({"num_envs": 0}, "--num-envs must be >= 1"),
    ({"absolute_metric": True}, "the absolute metric re-evaluates the best checkpoint: it needs checkpoint best"),
])
def test_online_experiment_errors(tmp_path, online_learner, kw, message):
    with pytest.raises(ValueError, match=message):
        run_experiment(online(tmp_path, online_learner, **kw))


def test_an_offline_learner_refuses_env(tmp_path):
    with pytest.raises(ValueError, match="'bc' learns offline from --dataset; it takes no --env"):
        run_experiment(Experiment(algo="bc", dataset=str(tmp_path / "d.h5"), env="matrix_game"))


def test_a_failed_run_leaves_its_traceback(tmp_path, online_learner, monkeypatch):
    def broken(self, batch):
        raise RuntimeError("update exploded")

    monkeypatch.setattr(_online_learner.TabularPG, "update", broken)
    with pytest.raises(RuntimeError, match="update exploded"):
        run_experiment(online(tmp_path, online_learner))
    assert "update exploded" in (tmp_path / "run" / "error.txt").read_text()


def test_an_online_run_killed_at_a_random_update_resumes_to_the_same_files(tmp_path, online_learner, monkeypatch):
    reference = run_experiment(online(tmp_path, online_learner, out=tmp_path / "reference"))
    kill_at = int(np.random.default_rng(7).integers(4, FRAMES // 32 - 1))  # an update between checkpoints
    original, calls = _online_learner.TabularPG.update, {"n": 0}

    def dies(self, batch):
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise KeyboardInterrupt  # what a kill looks like to the loop: nothing after this point is written
        return original(self, batch)

    monkeypatch.setattr(_online_learner.TabularPG, "update", dies)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(online(tmp_path, online_learner, out=tmp_path / "killed"))
    monkeypatch.setattr(_online_learner.TabularPG, "update", original)
    resumed = run_experiment(online(tmp_path, online_learner, out=tmp_path / "killed", resume=True))
    assert resumed["eval"]["curve"] == reference["eval"]["curve"]
    assert_same_run_files(tmp_path / "killed", tmp_path / "reference")
    assert torch.equal(load_run(tmp_path / "killed")[0].logits, load_run(tmp_path / "reference")[0].logits)
    assert torch.equal(load_run(tmp_path / "killed", "best")[0].logits,
                       load_run(tmp_path / "reference", "best")[0].logits)


def test_an_offline_experiment_returns_its_records(tmp_path, capsys):
    dataset = save_dataset(_toy_env.toy_dataset(episodes=20, seed=0), tmp_path / "toy.h5")
    record = run_experiment(Experiment(algo="bc", dataset=str(dataset), out=tmp_path / "run", steps=30,
                                       sets=("hidden=16", "history=2", "batch_size=8"), eval_episodes=3,
                                       progress=False))
    assert capsys.readouterr().out == ""
    assert record["source_label"] == "toy" and record["steps"] == 30
    assert record["eval"] == json.loads((tmp_path / "run" / "eval.json").read_text())
    algo, steps = load_run(tmp_path / "run")
    assert algo.name == "bc" and steps == 30
    with pytest.raises(FileNotFoundError, match="has no best checkpoint"):
        load_run(tmp_path / "run", "best")


def test_an_online_run_keeps_an_evaluated_checkpoint_series_that_a_resume_cuts_back(tmp_path, online_learner,
                                                                                      monkeypatch):
    run = tmp_path / "run"
    reference = run_experiment(online(tmp_path, online_learner, out=tmp_path / "reference", series_every=160))
    series = (tmp_path / "reference" / "checkpoints" / "series.csv").read_text().splitlines()
    assert series[0] == "step,return_mean,return_std,win_rate,path" and len(series) == 2 + FRAMES // 160
    assert series[1].startswith("0,") and series[1].endswith(",checkpoints/series/000000000000")  # the untrained one
    step, mean, _, win, path = series[2].split(",")
    assert int(step) == 160 and float(mean) >= 0 and win == "" and path == "checkpoints/series/000000000160"
    saved = load_algo(tmp_path / "reference" / path)
    assert saved.name == online_learner and reference["steps"] == FRAMES

    original, calls = _online_learner.TabularPG.update, {"n": 0}

    def dies(self, batch):
        calls["n"] += 1
        if calls["n"] == 13:  # after the series point at 320 frames and the checkpoint at 384, before 480
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(_online_learner.TabularPG, "update", dies)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(online(tmp_path, online_learner, out=run, series_every=160))
    monkeypatch.setattr(_online_learner.TabularPG, "update", original)
    run_experiment(online(tmp_path, online_learner, out=run, series_every=160, resume=True))
    assert (run / "checkpoints" / "series.csv").read_text().splitlines() == series
    assert sorted(p.name for p in (run / "checkpoints" / "series").iterdir()) == [
        f"{k:012d}" for k in range(0, FRAMES + 1, 160)]
