"""SMAC maps on SMAX (``offmarl.envs.smax``) and SMAX's heuristic as the ``expert``
(``offmarl.policies.scripted.smax``).

Only one map, 3s_vs_3z, is stepped here, at B = 4 (and B = 1 for the PettingZoo view): every (map, B)
costs one XLA compilation of the step (about 10 s of CPU), shared by all env instances of the process
(and kept on disk by jax's compilation cache). The other maps are built (no compilation) to check their
scenarios; ``benchmarks/env_smax_throughput.py`` steps them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests._cli_roundtrip import train_bc_then_eval
from tests._torch_threads import one_torch_thread  # noqa: F401

pytest.importorskip("jaxmarl", reason="needs the smax extra: pip install 'offmarl[smax]'")

import offmarl.envs.smax as smax  # noqa: E402
from offmarl.envs import make_env  # noqa: E402

MAP = "smac_3s_vs_3z"
B = 4
ZEALOT_HP, STALKER_HP = 150.0, 160.0  # SMAX unit_type_health
FULL_HP = np.array([STALKER_HP] * 3 + [ZEALOT_HP] * 3)  # 3s_vs_3z: allies, then enemies
MAX_REWARD = 3 * ZEALOT_HP + 10.0 * 3 + 200.0  # SMAC's max_reward for 3 zealots: 680
UNIT_LETTERS = {"m": "marine", "s": "stalker", "z": "zealot"}


def random_actions(ts, rng) -> np.ndarray:
    """Uniform over each agent's available actions."""
    return np.where(ts.avail_actions, rng.random(ts.avail_actions.shape), -1.0).argmax(axis=-1)


def unit_health(state: np.ndarray, units: int) -> np.ndarray:
    """Hit points of every unit from world states ``[..., state_dim]`` (health fraction is feature 0 of 10)."""
    return state[..., : 10 * units].reshape(*state.shape[:-1], units, 10)[..., 0] * FULL_HP[:units]


def test_maps_match_their_smac_names_and_the_catalog():
    from offmarl.envs import list_envs
    from offmarl.envs.catalog import SMAX_MAPS

    assert set(smax.SMAC_MAPS) == set(SMAX_MAPS)
    for name, smac_map in smax.SMAC_MAPS.items():
        allies, _, enemies = name.partition("_vs_")
        enemies = enemies or allies  # "2s3z" = the same units on both sides
        for side, units in ((allies, smac_map.allies), (enemies, smac_map.enemies)):
            expected = [UNIT_LETTERS[kind] for count, kind in re.findall(r"(\d+)([a-z])", side)
                        for _ in range(int(count))]
            assert [smax.UNIT_TYPES[u] for u in units] == expected, name
        env = smax.jaxmarl_env(name)  # builds the scenario (no compilation)
        assert (env.num_allies, env.num_enemies) == (len(smac_map.allies), len(smac_map.enemies))
        assert [smax.UNIT_TYPES[u] for u in np.asarray(env.scenario)] == [smax.UNIT_TYPES[u] for u in
                                                                          smac_map.allies + smac_map.enemies]
    entries = {e.name: e for e in list_envs() if e.source == "smax"}
    assert set(entries) == {f"smac_{m}" for m in SMAX_MAPS} | {"smac_1c3s5z", "smac_2s_vs_1sc"}
    assert "Colossus" in entries["smac_1c3s5z"].unavailable_reason
    assert "Spine Crawler" in entries["smac_2s_vs_1sc"].unavailable_reason
    with pytest.raises(RuntimeError, match="cannot be built: SMAX has no Colossus"):
        make_env("smac_1c3s5z")
    with pytest.raises(ValueError, match="cannot be built: SMAX has no Spine Crawler"):
        smax.jaxmarl_env("2s_vs_1sc")
    with pytest.raises(ValueError, match="unknown SMAC map 'nope'"):
        smax.jaxmarl_env("nope")


def test_import_keeps_stdout_clean_and_leaves_redirections_alone():
    """jaxmarl prints on import and resets sys.stdout; offmarl.envs.smax undoes both (CLI capture, --json)."""
    code = ("import io, sys\nbuf = io.StringIO()\nsys.stdout = buf\nimport offmarl.envs.smax\n"
            "assert sys.stdout is buf, sys.stdout\nprint('captured')\nsys.__stdout__.write(repr(buf.getvalue()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == repr("captured\n")


def test_spec_shapes_and_bad_input():
    from gymnasium import spaces

    env = make_env(MAP, num_envs=B, seed=0)
    spec = env.spec
    # 13 features per other unit (2 allies + 3 enemies) + 10 own; 12 per unit in the state
    assert (spec.n_agents, spec.obs_dim, spec.obs_dims, spec.state_dim) == (3, 75, (75, 75, 75), 72)
    assert spec.action_space == spaces.Discrete(8) and spec.has_avail_actions and spec.episode_limit == 100
    assert spec.agent_types == ("stalker",) * 3
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros((B, 3), np.int64))
    ts = env.reset()
    assert ts.obs.shape == (B, 3, 75) and ts.obs.dtype == np.float32
    assert ts.state.shape == (B, 72) and ts.state.dtype == np.float32
    assert ts.avail_actions.shape == (B, 3, 8) and ts.avail_actions.dtype == bool
    # the sides spawn 16 apart: every unit can move and stop, no enemy is within a stalker's range 6
    assert ts.avail_actions[..., :5].all() and not ts.avail_actions[..., 5:].any()
    np.testing.assert_allclose(unit_health(ts.state, 6), np.tile(FULL_HP, (B, 1)))
    assert ts.info["win"].tolist() == [False] * B and ts.final_obs is None
    with pytest.raises(ValueError, match=r"actions must have shape \[B, n\] = \[4, 3\]"):
        env.step(np.zeros((B, 2), np.int64))
    with pytest.raises(ValueError, match="discrete actions must lie in"):
        env.step(np.full((B, 3), 8))
    with pytest.raises(ValueError, match="episode_limit must be >= 1"):
        make_env(MAP, episode_limit=0)
    again = make_env(MAP, num_envs=2, **env.spec.kwargs)
    assert again.spec == env.spec
    frame = env.render(1)
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8 and len(np.unique(frame.reshape(-1, 3), axis=0)) > 3


def test_smac_reward_win_flag_and_auto_reset_by_hand():
    """Over whole episodes of the expert and of random play: every reward is SMAC's formula on the hit
    points in the states, won episodes return exactly 20, ended sub-envs report their final state."""
    from offmarl.policies.registry import make_behavior_policy

    env = make_env(MAP, num_envs=B, seed=3)
    rng = np.random.default_rng(0)
    expert = make_behavior_policy("expert", env.spec, seed=0)
    ts = env.reset()
    expert.reset(B)
    returns, ended_returns, ended_wins, lengths, ended_lengths = np.zeros(B), [], [], np.zeros(B, int), []
    for t in range(400):
        actions = expert.act(ts) if t < 250 else random_actions(ts, rng)
        prev = ts
        ts = env.step(actions)
        done = ts.terminated | ts.truncated
        after = np.where(done[:, None], ts.final_state, ts.state)  # [B, 72] the state the action led to
        hp_before, hp_after = unit_health(prev.state, 6), unit_health(after, 6)
        killed = (hp_before[:, 3:] > 0) & (hp_after[:, 3:] == 0)
        allies_alive, enemies_alive = (hp_after[:, :3] > 0).any(1), (hp_after[:, 3:] > 0).any(1)
        win = allies_alive & ~enemies_alive
        damage = (hp_before[:, 3:] - hp_after[:, 3:]).sum(axis=1)
        expected = (damage + 10.0 * killed.sum(axis=1) + 200.0 * win) * 20.0 / MAX_REWARD
        np.testing.assert_allclose(ts.reward, np.repeat(expected[:, None], 3, axis=1), atol=2e-4)
        assert ts.info["win"].tolist() == win.tolist()
        assert ts.terminated.tolist() == (~(allies_alive & enemies_alive)).tolist()
        lengths += 1
        assert ts.truncated.tolist() == ((lengths == 100) & ~ts.terminated).tolist()
        # final_obs belongs to the final state: own health and position (last 10 features) agree with it
        own = ts.final_obs[done][:, :, -10:]
        ally = after[done][:, :30].reshape(-1, 3, 10)
        np.testing.assert_allclose(own[..., 0], ally[..., 0], atol=1e-6)
        np.testing.assert_allclose(own[..., 1:3], ally[..., 1:3], atol=1e-6)  # both relative to the map
        # ...and the auto-reset sub-envs start afresh at full health
        np.testing.assert_allclose(unit_health(ts.state[done], 6), np.tile(FULL_HP, (done.sum(), 1)))
        returns += ts.reward[:, 0]
        for b in np.flatnonzero(done):
            ended_returns.append(returns[b])
            ended_wins.append(win[b])
            ended_lengths.append(lengths[b])
        returns[done], lengths[done] = 0.0, 0
        if done.any():
            expert.reset(B, done)
    ended_returns, ended_wins = np.array(ended_returns), np.array(ended_wins)
    assert ended_wins.sum() >= 1 and (~ended_wins).sum() >= 1
    np.testing.assert_allclose(ended_returns[ended_wins], 20.0, atol=1e-3)
    assert (ended_returns[~ended_wins] < 20.0 * (MAX_REWARD - 200.0) / MAX_REWARD + 1e-3).all()
    assert all(1 <= length <= 100 for length in ended_lengths)


def test_episode_limit_truncates_with_final_state():
    """A 3-step limit ends every episode by truncation (the armies are still approaching each other)."""
    env = make_env(MAP, num_envs=B, seed=5, episode_limit=3)
    long = make_env(MAP, num_envs=B, seed=5)
    assert env.spec.episode_limit == 3
    actions = np.zeros((B, 3), np.int64)  # everyone moves up
    ts, ref = env.reset(), long.reset()
    np.testing.assert_array_equal(ts.obs, ref.obs)
    for t in range(3):
        ts, ref = env.step(actions), long.step(actions)
        assert not ts.terminated.any() and ts.truncated.tolist() == [t == 2] * B
    np.testing.assert_array_equal(ts.final_obs, ref.obs)  # where the 100-step env is after 3 steps
    np.testing.assert_array_equal(ts.final_state, ref.state)
    np.testing.assert_array_equal(ts.final_avail, ref.avail_actions)  # the mask there, not the new episode's
    assert not np.array_equal(ts.state, ref.state)  # auto-reset: a new episode
    np.testing.assert_allclose(unit_health(ts.state, 6), np.tile(FULL_HP, (B, 1)))


def test_determinism_by_seed():
    rng = np.random.default_rng(1)
    a, b, c = (make_env(MAP, num_envs=B, seed=s) for s in (11, 11, 12))
    ta, tb, tc = a.reset(), b.reset(), c.reset()
    assert not np.array_equal(ta.obs, tc.obs)
    for _ in range(30):
        actions = random_actions(ta, rng)
        ta, tb = a.step(actions), b.step(actions)
        for field in ("obs", "state", "reward", "avail_actions", "terminated", "truncated"):
            np.testing.assert_array_equal(getattr(ta, field), getattr(tb, field))
    again = a.reset(seed=11)
    np.testing.assert_array_equal(again.obs, make_env(MAP, num_envs=B, seed=11).reset().obs)


def test_expert_beats_random_and_levels_keep_actions_available():
    from offmarl.collect.mixing import MixedPolicy, PerAgentLevelPolicy
    from offmarl.policies.registry import behavior_policy_names, make_behavior_policy
    from offmarl.train.evaluate import evaluate_policy

    assert behavior_policy_names(MAP) == ["random", "expert"]
    spec = make_env(MAP).spec
    expert = evaluate_policy(make_behavior_policy("expert", spec, seed=0), MAP, {}, B, seed=0)
    random = evaluate_policy(make_behavior_policy("random", spec, seed=0), MAP, {}, B, seed=0)
    assert expert["win_rate"] is not None and random["win_rate"] == 0.0
    assert expert["return_mean"] > random["return_mean"] + 3.0
    with pytest.raises(ValueError, match="attack_mode must be one of"):
        make_behavior_policy("expert", spec, attack_mode="weakest")

    env = make_env(MAP, num_envs=B, seed=2)
    policies = [make_behavior_policy("expert", spec, seed=1),
                MixedPolicy(make_behavior_policy("expert", spec, seed=1), spec, 0.3, seed=1),
                PerAgentLevelPolicy(make_behavior_policy("expert", spec, seed=1), spec, ["r", "m", "e"], seed=1)]
    ts = env.reset()
    for policy in policies:
        policy.reset(B)
    for _ in range(120):
        acts = [policy.act(ts) for policy in policies]
        for actions in acts:
            assert np.take_along_axis(ts.avail_actions, actions[..., None], axis=-1).all()
        ts = env.step(acts[2])
        if ts.done.any():
            for policy in policies:
                policy.reset(B, ts.done)


def test_envs_listing_shows_smax_maps_and_reasons():
    from offmarl.cli import app

    result = CliRunner().invoke(app, ["envs", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows[MAP]["available"] and rows[MAP]["source"] == "smax"
    assert rows[MAP]["spec"]["n_agents"] == 3 and rows[MAP]["spec"]["action_space"] == {"kind": "discrete", "n": 8}
    assert rows["smac_10m_vs_11m"]["spec"]["n_agents"] == 10
    assert not rows["smac_1c3s5z"]["available"] and "Colossus" in rows["smac_1c3s5z"]["reason"]
    assert not rows["smac_2s_vs_1sc"]["available"] and "Spine Crawler" in rows["smac_2s_vs_1sc"]["reason"]


def test_pettingzoo_parallel_api_and_render_gif(tmp_path):
    """tests/test_pettingzoo_api.py covers only native envs; this is the SMAX case (B = 1)."""
    from pettingzoo.test import parallel_api_test

    from offmarl.cli import app
    from offmarl.envs import pettingzoo_env

    env = pettingzoo_env(MAP, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=env.spec.episode_limit + 5)
    assert not [str(w.message) for w in caught if "pettingzoo" in w.filename and "test" in w.filename]
    obs, infos = env.reset(seed=1)
    assert env.agents == ["stalker_0", "stalker_1", "stalker_2"] and obs["stalker_2"].shape == (75,)
    assert infos["stalker_0"]["action_mask"].tolist() == [1, 1, 1, 1, 1, 0, 0, 0] and not infos["stalker_0"]["win"]
    assert env.state().shape == (72,)
    while env.agents:
        _, _, terminations, truncations, infos = env.step({a: 4 for a in env.agents})  # all stop: the zealots come
    assert all(terminations.values()) and not infos["stalker_0"]["win"]  # idle stalkers lose
    assert env.render().shape == (256, 256, 3)
    env.close()

    out = tmp_path / "smax.gif"
    result = CliRunner().invoke(app, ["envs", "render", MAP, "--policy", "expert", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "frames" in result.stdout


def test_cli_collect_composition_train_bc_eval(tmp_path):
    from offmarl.cli import app
    from offmarl.data import load_dataset

    runner = CliRunner()
    data, run = tmp_path / "smax.h5", tmp_path / "run"
    result = runner.invoke(app, ["collect", MAP, "--composition", "[r,m,e]", "--episodes", str(B),
                                 "--num-envs", str(B), "--out", str(data)])
    assert result.exit_code == 0, result.output
    ds = load_dataset(data)
    assert ds.n_episodes == B and ds.card.env_name == MAP and ds.card.behavior["composition"] == "100%[r,m,e]"
    assert ds.avail_actions is not None and np.take_along_axis(ds.avail_actions, ds.actions[..., None], -1).all()
    assert ds.state.shape[1] == 72 and ds.final_state.shape == (B, 72)
    record = train_bc_then_eval(runner, data, run, episodes=B, train_eval_episodes=0)
    assert record["episodes"] == B and len(record["per_agent_return"]) == 3
    assert 0.0 <= record["win_rate"] <= 1.0 and 0.0 <= record["return_mean"] <= 20.0


def test_alive_agents_are_reported_and_a_dead_one_may_only_stop():
    env = make_env("smac_3s_vs_3z", num_envs=4, seed=0)
    ts, rng, seen_dead, seen_final_dead = env.reset(seed=0), np.random.default_rng(0), False, False
    assert ts.info["alive"].all()
    for _ in range(80):
        ts = env.step(random_actions(ts, rng))
        alive = ts.info["alive"]
        np.testing.assert_array_equal(alive, unit_health(ts.state, 3) > 0)
        dead = ~alive
        seen_dead |= bool(dead.any())
        only_stop = ts.avail_actions.sum(-1) == 1
        assert (only_stop[dead] & ts.avail_actions[dead][:, smax.STOP_ACTION]).all()
        # an ended episode's final mask is its final state's: its dead allies may only stop there
        done = ts.terminated | ts.truncated
        final_dead = (unit_health(ts.final_state, 3) == 0) & done[:, None]
        seen_final_dead |= bool(final_dead.any())
        assert (ts.final_avail[final_dead].sum(-1) == 1).all()
        assert ts.final_avail[final_dead][:, smax.STOP_ACTION].all()
    assert seen_dead, "no ally died in 80 random steps: raise the number of steps"
    assert seen_final_dead, "no episode ended with a dead ally in 80 random steps: raise the number of steps"


@pytest.mark.timeout(300)
def test_an_online_run_on_smax_killed_at_a_random_update_resumes_bit_exactly(tmp_path, monkeypatch):
    """IPPO on smac_3s_vs_3z: the checkpoint holds SMAX's JAX state and keys, so the resumed run's files
    and weights equal the uninterrupted run's."""
    from offmarl.algos.ippo import IPPO
    from offmarl.train.experiment import Experiment, load_run, run_experiment
    from tests._run_files import assert_same_run_files

    def experiment(out, **kw):
        return Experiment(algo="ippo", env="smac_3s_vs_3z", num_envs=4, steps=4 * 10 * 6, out=out, seed=5,
                          sets=("hidden=8", "rollout_length=10", "chunk_length=5", "ppo_epochs=1"),
                          eval_episodes=4, eval_every=80, checkpoint_every=40, series_every=0, progress=False, **kw)

    run_experiment(experiment(tmp_path / "reference"))
    kill_at = int(np.random.default_rng(11).integers(2, 6))
    original, calls = IPPO.update, {"n": 0}

    def dies(self, batch):
        calls["n"] += 1
        if calls["n"] == kill_at:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(IPPO, "update", dies)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(experiment(tmp_path / "killed"))
    monkeypatch.setattr(IPPO, "update", original)
    run_experiment(experiment(tmp_path / "killed", resume=True))
    assert_same_run_files(tmp_path / "killed", tmp_path / "reference")
    killed, reference = load_run(tmp_path / "killed")[0], load_run(tmp_path / "reference")[0]
    for a, b in zip(killed.actor.state_dict().values(), reference.actor.state_dict().values()):
        assert torch.equal(a, b)


def test_state_cooldowns_are_fractions_of_the_unit_types_cooldown():
    """SMAX's world_state cooldown falls without a floor while a unit holds fire; the state takes it as SMAC
    does, the fraction of the unit type's cooldown in [0, 1] -- positive right after a unit fires."""
    env = make_env("smac_3s_vs_3z", num_envs=4, seed=0)
    ts, rng, fired = env.reset(seed=0), np.random.default_rng(0), False
    cooldowns = slice(3, smax.UNIT_FEATURES * 6, smax.UNIT_FEATURES)
    for t in range(120):
        holding = t < 60  # first only moves (SMAX's raw cooldown then reaches about -16), then any action
        actions = random_actions(ts, rng)
        if holding:
            actions = np.where(actions >= smax.STOP_ACTION, smax.STOP_ACTION, actions)
        ts = env.step(actions)
        for state in (ts.state, ts.final_state):
            assert (state[:, cooldowns] >= 0).all() and (state[:, cooldowns] <= 1).all()
        fired |= bool((ts.state[:, cooldowns][:, :3] > 0).any())
    assert fired, "no ally fired in 60 random steps: raise the number of steps"
