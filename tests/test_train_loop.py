"""The fit loop, run directory, checkpoints and the train/eval CLI commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import _toy_env
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from offmarl.algos.base import AlgoConfig, Algorithm
from offmarl.cli import app
from offmarl.data.io import save_dataset
from offmarl.errors import CheckpointError
from offmarl.train import TrainConfig, atomic_torch_save, fit, load_checkpoint

torch.set_num_threads(1)


# ---- a stand-in algorithm whose numbers are known --------------------------------------------------------
class CountingSampler:
    """Draws one random integer per batch from its own generator."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def sample(self) -> dict[str, torch.Tensor]:
        return {"x": torch.tensor(float(self.rng.integers(0, 100)))}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class TwoStage(Algorithm):
    """Stage "teacher" for ``switch`` updates, then "student"; each logs other losses.

    Losses are hand-computable: ``loss_teacher = step`` (1-based), ``loss_student = 2 * step`` and
    ``kl = 1``. The weight ``w`` moves with the batch and the global torch RNG, so a resumed run that
    restores either wrongly ends with a different ``w``."""

    name = "two_stage_test"
    Config = AlgoConfig

    def __init__(self, spec, config, device="cpu", switch: int = 5, crash_at: int | None = None):
        self.switch, self.crash_at = switch, crash_at  # the stages are checked against the budget at construction
        super().__init__(spec, config, device)
        self.w = torch.zeros(3)
        self.updates = 0
        self.autocast_seen: list[bool] = []

    def stage_fractions(self):
        share = self.switch / self.config.steps
        return (("teacher", share), ("student", 1.0 - share))

    def make_sampler(self, dataset, seed):
        return CountingSampler(seed)

    def update(self, batch):
        if self.crash_at is not None and self.updates + 1 == self.crash_at:
            raise RuntimeError("simulated crash")
        self.autocast_seen.append(torch.is_autocast_enabled("cpu"))
        self.w += batch["x"] * torch.rand(3)
        self.updates += 1
        if self.stage == "teacher":
            return {"loss_teacher": float(self.updates)}
        return {"loss_student": 2.0 * self.updates, "kl": 1.0}

    def policies(self):
        raise NotImplementedError

    def state_dict(self):
        return {"w": self.w.clone(), "updates": self.updates}

    def load_state_dict(self, state):
        self.w, self.updates = state["w"].clone(), int(state["updates"])


@pytest.fixture(scope="module")
def toy():
    return _toy_env.toy_dataset(episodes=20, seed=0)


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"progress": False, "tensorboard": False, **kw})


def test_fit_writes_config_metrics_and_checkpoint(tmp_path, toy):
    algo = TwoStage(toy.spec, AlgoConfig(steps=10))
    out = fit(algo, toy, tmp_path, cfg(log_every=4, checkpoint_every=4, seed=3), meta={"algo_label": "x"})
    assert out["steps"] == 10

    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("algo", "algo_config", "train_config", "dataset", "env_spec", "offmarl_version", "torch_version",
                "torch_threads", "device", "command", "algo_label"):
        assert key in config, key
    assert config["torch_threads"] == 1 and config["train_config"]["seed"] == 3
    assert config["dataset"]["env_name"] == "toy_pick" and config["algo_config"]["steps"] == 10

    header, rows = read_rows(tmp_path / "metrics.csv")
    # the stage's end (after step 5) flushes the teacher's partial window; new loss columns widen the header
    assert header == ["step", "stage", "steps_per_s", "wall_time", "loss_teacher", "loss_student", "kl"]
    assert [(r["step"], r["stage"]) for r in rows] == [("4", "teacher"), ("5", "teacher"), ("8", "student"),
                                                       ("10", "student")]
    assert [r["loss_teacher"] for r in rows] == ["2.5", "5.0", "", ""]  # window means of 1..4 and 5
    assert [r["loss_student"] for r in rows] == ["", "", "14.0", "19.0"]  # means of 12,14,16 and 18,20
    assert all(float(r["steps_per_s"]) > 0 for r in rows)

    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert set(ckpt) == {"format", "step", "algo", "sampler", "rng", "metrics", "curve", "win_curve", "series"}
    assert ckpt["step"] == 10 and ckpt["metrics"]["rows"] == 4 and ckpt["algo"]["updates"] == 10
    assert set(ckpt["rng"]) >= {"python", "numpy", "torch"}


def test_resume_drops_rows_past_the_checkpoint_and_continues_exactly(tmp_path, toy):
    reference = TwoStage(toy.spec, AlgoConfig(steps=12))
    fit(reference, toy, tmp_path / "ref", cfg(log_every=1, checkpoint_every=4))

    crashed = TwoStage(toy.spec, AlgoConfig(steps=12), crash_at=11)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(crashed, toy, tmp_path / "run", cfg(log_every=1, checkpoint_every=4))
    _, rows = read_rows(tmp_path / "run" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 11))  # rows 9, 10 are past the checkpoint at 8

    resumed = TwoStage(toy.spec, AlgoConfig(steps=12))
    fit(resumed, toy, tmp_path / "run", cfg(log_every=1, checkpoint_every=4, resume=True))
    _, rows = read_rows(tmp_path / "run" / "metrics.csv")
    _, ref_rows = read_rows(tmp_path / "ref" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    for key in ("stage", "loss_teacher", "loss_student", "kl"):
        assert [r[key] for r in rows] == [r[key] for r in ref_rows]
    assert torch.equal(resumed.w, reference.w)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert [r["step"] for r in config["resumes"]] == [8]


def test_resume_refuses_a_different_config_and_a_fresh_run_refuses_an_old_dir(tmp_path, toy):
    fit(TwoStage(toy.spec, AlgoConfig(steps=4)), toy, tmp_path, cfg(checkpoint_every=2))
    with pytest.raises(ValueError, match="algo config 'lr' was 0.0001, now 0.001"):
        fit(TwoStage(toy.spec, AlgoConfig(steps=4, lr=1e-3)), toy, tmp_path, cfg(resume=True))
    with pytest.raises(ValueError, match="seed was 0, now 1"):
        fit(TwoStage(toy.spec, AlgoConfig(steps=4)), toy, tmp_path, cfg(resume=True, seed=1))
    with pytest.raises(ValueError, match="already holds a run"):
        fit(TwoStage(toy.spec, AlgoConfig(steps=4)), toy, tmp_path, cfg())


def test_a_run_written_before_a_config_field_existed_resumes_when_the_field_keeps_its_default(tmp_path, toy):
    reference = TwoStage(toy.spec, AlgoConfig(steps=12))
    fit(reference, toy, tmp_path / "ref", cfg(checkpoint_every=4))
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(TwoStage(toy.spec, AlgoConfig(steps=12), crash_at=11), toy, tmp_path / "run", cfg(checkpoint_every=4))
    record = tmp_path / "run" / "config.json"
    old = json.loads(record.read_text())
    del old["algo_config"]["lr"]  # as if `lr` were added to the config after the run started
    record.write_text(json.dumps(old))

    with pytest.raises(ValueError, match="algo config 'lr' was 0.0001, now 0.001"):
        fit(TwoStage(toy.spec, AlgoConfig(steps=12, lr=1e-3)), toy, tmp_path / "run", cfg(resume=True))
    resumed = TwoStage(toy.spec, AlgoConfig(steps=12))
    fit(resumed, toy, tmp_path / "run", cfg(checkpoint_every=4, resume=True))
    assert torch.equal(resumed.w, reference.w)
    assert json.loads(record.read_text())["algo_config"]["lr"] == 1e-4


def test_evaluations_during_training_form_the_curve_and_leave_training_unchanged(tmp_path, toy):
    def evaluator(step: int) -> dict:
        torch.rand(5), np.random.rand()  # draws from the global streams must not leak into training
        return {"return_mean": step / 10, "return_std": 0.5}

    plain = TwoStage(toy.spec, AlgoConfig(steps=6))
    fit(plain, toy, None, cfg())
    evaluated = TwoStage(toy.spec, AlgoConfig(steps=6))
    out = fit(evaluated, toy, tmp_path, cfg(eval_every=3, checkpoint_every=3), evaluator=evaluator)
    assert torch.equal(plain.w, evaluated.w)
    assert out["curve"] == [[3, 0.3, 0.5], [6, 0.6, 0.5]]
    assert json.loads((tmp_path / "curve.json").read_text()) == out["curve"]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["curve"] == out["curve"]


def test_the_best_evaluation_keeps_its_weights_and_ties_keep_the_earlier(tmp_path, toy):
    scripted = {2: 1.0, 4: 3.0, 6: 2.0, 8: 3.0}  # best at step 4; step 8 only ties it

    def evaluator(step: int) -> dict:
        return {"return_mean": scripted[step], "return_std": 0.1}

    fit(TwoStage(toy.spec, AlgoConfig(steps=8)), toy, tmp_path / "run", cfg(eval_every=2, checkpoint_every=2),
        evaluator=evaluator)
    best = tmp_path / "run" / "best"
    assert json.loads((best / "best.json").read_text()) == {"step": 4, "return_mean": 3.0, "return_std": 0.1}
    assert not (tmp_path / "run" / "best.tmp").exists()
    stopped_at_4 = TwoStage(toy.spec, AlgoConfig(steps=8))  # the same run stopped after 4 updates
    fit(stopped_at_4, toy, None, cfg(steps=4))
    assert torch.equal(torch.load(best / "algo.pt", weights_only=True)["w"], stopped_at_4.w)

    fit(TwoStage(toy.spec, AlgoConfig(steps=4)), toy, tmp_path / "no_eval", cfg())
    assert not (tmp_path / "no_eval" / "best").exists()  # nothing evaluated, nothing selected


def test_bf16_runs_updates_under_autocast(toy, monkeypatch):
    from offmarl.train import loop

    algo = TwoStage(toy.spec, AlgoConfig(steps=2))
    monkeypatch.setattr(loop, "native_bf16", lambda device: False)  # e.g. an AVX2-only CPU: the user is told
    with pytest.warns(UserWarning, match="without native bf16 .* emulated"):
        fit(algo, toy, None, cfg(precision="bf16"))
    assert algo.precision == "bf16" and algo.autocast_seen == [True, True]
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")


def test_checkpoints_hold_only_weights_only_values(tmp_path):
    atomic_torch_save({"a": np.arange(3), "b": [np.float32(1.5), (1, "x")], "c": None}, tmp_path / "ok.pt")
    loaded = torch.load(tmp_path / "ok.pt", weights_only=True)
    assert torch.equal(loaded["a"], torch.arange(3)) and loaded["b"] == [1.5, (1, "x")] and loaded["c"] is None
    with pytest.raises(TypeError, match=r"checkpoint value opt\.inner\[1\] has type object"):
        atomic_torch_save({"opt": {"inner": [1, object()]}}, tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists() and list(tmp_path.iterdir()) == [tmp_path / "ok.pt"]
    (tmp_path / "torn.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="torn.pt: checkpoint unreadable"):
        load_checkpoint(tmp_path / "torn.pt")


# ---- the CLI ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_h5(tmp_path_factory, toy) -> Path:
    return save_dataset(toy, tmp_path_factory.mktemp("data") / "small.h5")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_cli_train_then_eval_end_to_end(tmp_path, small_h5):
    run = tmp_path / "run"
    result = invoke("train", "bc", "--dataset", str(small_h5), "--out", str(run), "--steps", "20",
                    "--eval-episodes", "4", "--eval-every", "10", "--quiet", "--set", "hidden=16", "--set", "history=2")
    assert result.exit_code == 0, result.output
    record = json.loads((run / "eval.json").read_text())
    for key in ("schema_version", "algo", "dataset", "seed", "return_mean", "return_std", "per_agent_return",
                "episodes", "win_rate", "curve", "protocol"):
        assert key in record, key
    assert record["algo"] == "bc" and record["dataset"] == "small" and record["episodes"] == 4
    assert [p[0] for p in record["curve"]] == [10, 20]
    assert record["protocol"] == {"checkpoint": "last", "target_return": None, "greedy": True, "steps": 20,
                                  "eval_seed": 12345, "steps_unit": "updates"}
    assert (run / "model" / "algo.pt").exists() and (run / "tensorboard").is_dir() and not (run / "error.txt").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["algo_config"]["hidden"] == 16 and config["dataset_source"]["path"] == str(small_h5)

    gif = tmp_path / "episode.gif"
    result = invoke("eval", str(run), "--episodes", "3", "--render", str(gif))
    assert result.exit_code == 0, result.output
    again = json.loads((run / "eval.json").read_text())
    assert again["episodes"] == 3 and again["curve"] == record["curve"] and gif.stat().st_size > 0

    result = invoke("train", "bc", "--dataset", str(small_h5), "--out", str(run), "--steps", "20")
    assert result.exit_code == 2 and "already holds a run" in result.output


@pytest.mark.parametrize("args, message", [
    (["train", "nope", "--dataset", "{h5}"], "error: unknown algorithm 'nope'; known: "),
    (["train", "bc", "--dataset", "{h5}", "--set", "foo=1"],
     "error: algorithm 'bc' has no config key 'foo'; known: "),
    (["train", "bc", "--dataset", "{h5}", "--set", "lr"], "error: --set expects key=value, got 'lr'"),
    (["train", "bc", "--dataset", "{h5}", "--set", "hidden=big"],
     "error: config key 'hidden': cannot read 'big' as int"),
    (["train", "bc", "--dataset", "{h5}", "--preset", "tseng"], "error: algorithm 'bc' has no presets"),
    (["train", "bc", "--dataset", "{h5}", "--ablation", "no_kl"], "error: algorithm 'bc' has no ablation 'no_kl'"),
    (["train", "bc", "--dataset", "no/such/recipe"],
     "error: dataset 'no/such/recipe' is neither an existing file nor a recipe"),
    (["train", "bc"], "error: --dataset is required"),
    (["train", "bc", "--dataset", "{h5}", "--threads", "0"], "error: --threads must be >= 1, got 0"),
    (["train", "bc", "--dataset", "{h5}", "--tag", "a b"], "error: tag 'a b': use letters, digits"),
    (["train", "bc", "--dataset", "{h5}", "--out", "{tmp}/r", "--resume"], "error: --resume: "),
    (["eval", "{tmp}"], "error: {tmp} is not a run directory (no config.json)"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, small_h5, args, message):
    fill = lambda s: s.replace("{h5}", str(small_h5)).replace("{tmp}", str(tmp_path))  # noqa: E731
    result = invoke(*map(fill, args))
    assert result.exit_code == 2, result.output
    assert result.output.startswith(fill(message)), result.output
    assert result.output.count("\n") == 1


def test_cli_tag_labels_the_run_and_its_default_directory(tmp_path, small_h5, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("train", "bc", "--dataset", str(small_h5), "--steps", "2", "--eval-episodes", "2", "--quiet",
                    "--set", "hidden=8", "--tag", "narrow")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "small" / "bc@narrow" / "seed0"
    assert json.loads((run / "eval.json").read_text())["algo"] == "bc@narrow"
    assert json.loads((run / "config.json").read_text())["algo_label"] == "bc@narrow"


def test_cli_best_checkpoint_is_scored_on_held_out_episodes(tmp_path, small_h5):
    run = tmp_path / "run"
    result = invoke("train", "bc", "--dataset", str(small_h5), "--out", str(run), "--steps", "20", "--eval-episodes",
                    "4", "--eval-every", "5", "--quiet", "--set", "hidden=8", "--set", "history=2",
                    "--checkpoint", "best")
    assert result.exit_code == 0, result.output
    record = json.loads((run / "eval.json").read_text())
    best = json.loads((run / "best" / "best.json").read_text())
    means = [p[1] for p in record["curve"]]
    assert [p[0] for p in record["curve"]] == [5, 10, 15, 20]
    assert best["step"] == record["curve"][means.index(max(means))][0] and best["return_mean"] == max(means)
    assert record["protocol"]["checkpoint"] == "best" and record["protocol"]["steps"] == best["step"]
    assert record["protocol"]["eval_seed"] == 54321  # not the 12345 episodes it was selected on

    again = invoke("eval", str(run), "--checkpoint", "best", "--episodes", "4")
    assert again.exit_code == 0, again.output
    assert json.loads((run / "eval.json").read_text())["return_mean"] == record["return_mean"]
    last = invoke("eval", str(run), "--episodes", "4")
    assert last.exit_code == 0 and json.loads((run / "eval.json").read_text())["protocol"]["checkpoint"] == "last"

    no_curve = tmp_path / "no_curve"
    assert invoke("train", "bc", "--dataset", str(small_h5), "--out", str(no_curve), "--steps", "2", "--eval-episodes",
                  "2", "--quiet", "--set", "hidden=8").exit_code == 0
    result = invoke("eval", str(no_curve), "--checkpoint", "best")
    assert result.exit_code == 2 and "has no best checkpoint" in result.output
    result = invoke("train", "bc", "--dataset", str(small_h5), "--out", str(tmp_path / "x"), "--checkpoint", "best")
    assert result.exit_code == 2 and "--checkpoint best needs evaluations during training" in result.output
    result = invoke("eval", str(run), "--checkpoint", "first")
    assert result.exit_code == 2 and "--checkpoint must be one of last, best" in result.output


def test_cli_target_return_is_refused_for_bc(tmp_path, small_h5):
    run = tmp_path / "run"
    assert invoke("train", "bc", "--dataset", str(small_h5), "--out", str(run), "--steps", "2", "--eval-episodes",
                  "0", "--quiet", "--set", "hidden=8").exit_code == 0
    assert not (run / "eval.json").exists()
    result = invoke("eval", str(run), "--target-return", "3")
    assert result.exit_code == 2 and "'bc' is not return-conditioned" in result.output


def test_cli_threads_sets_torch_threads_for_the_run(tmp_path, small_h5):
    import torch

    before = torch.get_num_threads()
    run = tmp_path / "run"
    try:
        assert invoke("train", "bc", "--dataset", str(small_h5), "--out", str(run), "--steps", "2", "--threads", "1",
                      "--eval-episodes", "0", "--quiet", "--set", "hidden=8").exit_code == 0
        assert json.loads((run / "config.json").read_text())["torch_threads"] == 1
    finally:
        torch.set_num_threads(before)


def test_cli_list_names_every_algorithm():
    result = invoke("train", "--list")
    assert result.exit_code == 0
    header, *rows = result.output.splitlines()
    assert header.split() == ["name", "learns_from", "discrete", "continuous", "decentralized", "ablations", "variants"]
    assert any(row.split()[:5] == ["bc", "dataset", "yes", "yes", "yes"] for row in rows)


def test_config_sources_override_in_order(tmp_path):
    from offmarl.algos.base import build_config, get_algo_class
    from offmarl.train.experiment import config_overrides

    bc = get_algo_class("bc")
    assert build_config(bc, config_overrides(bc, "fill_in", None, [], None, None, None)).lr == 5e-4  # Table 5
    yml = tmp_path / "c.yaml"
    yml.write_text("lr: 1.0e-3\nhidden: 64\n")
    config = build_config(bc, config_overrides(bc, "fill_in", yml, ["hidden=32"], None, None, None))
    assert (config.lr, config.hidden) == (1e-3, 32)
    yml.write_text("- lr\n")
    with pytest.raises(ValueError, match="expected a mapping of config keys, got list"):
        config_overrides(bc, "fill_in", yml, [], None, None, None)


def test_atomic_directory_replaces_a_directory_whole_or_not_at_all(tmp_path):
    from offmarl.core.files import atomic_directory

    target = tmp_path / "best"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "a.txt").write_text("half")
            raise RuntimeError("killed while writing")
    assert (target / "a.txt").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    with atomic_directory(target) as staging:
        (staging / "b.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
