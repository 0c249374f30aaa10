"""Evaluation of joint policies in a batched env: first-episode accounting, resets, wins, GIFs, eval.json."""

from __future__ import annotations

import json
import math

import _toy_env
import imageio.v3 as iio
import numpy as np
import pytest
from _toy_env import ToyExpert, ToyPickEnv

from offmarl.policies.random import RandomPolicy
from offmarl.train.evaluate import evaluate_policy, write_eval_json


class Recording(ToyExpert):
    """The expert, recording every ``reset`` mask and ``first`` flag it is given."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.resets: list[list[bool] | None] = []
        self.firsts: list[bool] = []

    def reset(self, batch_size, mask=None):
        self.resets.append(None if mask is None else np.asarray(mask).tolist())

    def act(self, ts, first=False):
        self.firsts.append(first)
        return super().act(ts, first)


def test_optimal_policy_counts_each_sub_envs_first_episode_only():
    policy = Recording()
    result = evaluate_policy(policy, _toy_env.ENV_NAME, {}, episodes=3, seed=0)
    # episodes last 1, 2, 3 steps; sub-env 0 plays three episodes while sub-env 2 plays one
    assert result["returns"] == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    assert result["lengths"] == [1, 2, 3]
    assert result["return_mean"] == 2.0 and math.isclose(result["return_std"], math.sqrt(2 / 3))
    assert result["per_agent_return"] == [2.0, 2.0] and result["episodes"] == 3 and result["win_rate"] == 1.0
    assert policy.firsts == [True, False, False]
    assert policy.resets == [None, [True, False, False], [True, True, False]]  # none after the last episode ends


def test_per_agent_average_and_wins_of_a_policy_with_one_wrong_agent():
    result = evaluate_policy(ToyExpert(wrong_agent=1), _toy_env.ENV_NAME, {"lengths": [2, 3]}, episodes=4, seed=1)
    assert result["returns"] == [[2.0, 0.0], [3.0, 0.0], [2.0, 0.0], [3.0, 0.0]]
    assert result["per_agent_return"] == [2.5, 0.0]
    assert result["return_mean"] == 1.25 and result["return_std"] == 0.25  # per-agent averages 1, 1.5, 1, 1.5
    assert result["win_rate"] == 0.0


def test_random_policy_respects_masks_and_boxes():
    env = ToyPickEnv(num_envs=64, seed=0)
    policy = RandomPolicy(env.spec, seed=0)
    ts, actions = env.reset(), []
    for _ in range(20):
        actions.append(policy.act(ts))
        ts = env.step(actions[-1])
    actions = np.stack(actions)  # [20, 64, 2]
    assert set(np.unique(actions[..., 0])) == {0, 1, 2}
    assert set(np.unique(actions[..., 1])) == {0, 1}  # agent 1's action 2 is never available
    cont = ToyPickEnv(num_envs=256, seed=0, continuous=True)
    a = RandomPolicy(cont.spec, seed=0).act(cont.reset())
    assert a.shape == (256, 2, 1) and a.dtype == np.float32 and a.min() >= -1 and a.max() <= 1 and a.std() > 0.5
    result = evaluate_policy(RandomPolicy(env.spec, seed=0), _toy_env.ENV_NAME, {}, episodes=300, seed=0)
    # each pick is right with probability 1/3 (agent 0) or 1/2 (agent 1); mean episode length is 2
    assert result["per_agent_return"][0] == pytest.approx(2 / 3, abs=0.15)
    assert result["per_agent_return"][1] == pytest.approx(1.0, abs=0.15)


def test_render_writes_sub_env_0s_episode_as_a_gif(tmp_path):
    gif = tmp_path / "ep.gif"
    evaluate_policy(ToyExpert(), _toy_env.ENV_NAME, {"lengths": [3, 1]}, episodes=2, seed=0, render_path=gif)
    frames = iio.imread(gif, index=None)
    assert frames.shape[:3] == (3, 8, 8)  # one frame before each of sub-env 0's three actions
    assert frames[:, 0, 0, 0].tolist() == [0, 60, 120]


def test_write_eval_json_schema(tmp_path):
    result = evaluate_policy(ToyExpert(), _toy_env.ENV_NAME, {}, episodes=3, seed=0)
    record = write_eval_json(tmp_path, result, algo="distill[no_kl]", dataset="tseng/fill_in", seed=4,
                             curve=[[10, 1.0, 0.5]], target_return=7.0, steps=10, eval_seed=12345)
    assert json.loads((tmp_path / "eval.json").read_text()) == record
    assert record["schema_version"] == 1 and record["algo"] == "distill[no_kl]" and record["seed"] == 4
    assert record["curve"] == [[10, 1.0, 0.5]] and record["win_rate"] == 1.0
    assert record["protocol"] == {"checkpoint": "last", "target_return": 7.0, "greedy": True, "steps": 10,
                                  "eval_seed": 12345, "steps_unit": "updates"}
    assert record["dataset"] == record["source"] == "tseng/fill_in" and "env" not in record


def test_an_online_runs_eval_json_names_its_env_and_counts_frames(tmp_path):
    result = evaluate_policy(ToyExpert(), _toy_env.ENV_NAME, {}, episodes=3, seed=0)
    record = write_eval_json(tmp_path, result, algo="ippo", dataset="toy", seed=1, curve=[[640, 1.0, 0.5]],
                             steps=640, env=_toy_env.ENV_NAME, env_kwargs={"lengths": [2]}, win_curve=[[640, 1.0]])
    assert record["dataset"] is None and record["source"] == "toy" and record["env"] == _toy_env.ENV_NAME
    assert record["env_kwargs"] == {"lengths": [2]} and record["win_curve"] == [[640, 1.0]]
    assert record["protocol"]["steps_unit"] == "frames" and record["win_rate"] == 1.0


def test_bad_episode_count_is_refused():
    with pytest.raises(ValueError, match="episodes >= 1"):
        evaluate_policy(ToyExpert(), _toy_env.ENV_NAME, {}, episodes=0, seed=0)
