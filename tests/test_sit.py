"""SIT (offmarl.algos.sit): each equation by its defining property, the three stages through `offmarl train`,
decentralized execution, and the reward decomposition on an agent-wise imbalanced CN_3ls3l dataset."""

from __future__ import annotations

import copy
import json

import _toy_env
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _datasets import make_dataset
from _torch_threads import one_torch_thread  # noqa: F401  (autouse: tiny networks on one torch thread)
from typer.testing import CliRunner

from offmarl.algos import make_algo
from offmarl.algos.sit import (
    ABLATIONS,
    VARIANTS,
    crr_actor_loss,
    ensemble_statistics,
    uncertainty_weights,
    weighted_td_loss,
)
from offmarl.data.io import save_dataset
from offmarl.data.returns import discounted_returns
from offmarl.data.samplers import DecomposedReplay, softmax_priorities, trajectory_priorities
from offmarl.envs.base import TimeStep
from offmarl.nets.reward_decomposition import RewardDecomposition
from offmarl.train import TrainConfig, fit, seed_everything

TINY = {"members": 3, "reward_hidden": 16, "attention_hidden": 16, "hidden": 8, "critic_hidden": 8, "batch_size": 8}


def stage_one(algo, sampler, updates: int) -> None:
    algo.plan(updates + 2)
    algo.enter_stage("ardnem")
    for _ in range(updates):
        algo.update(sampler.sample())


# ---- ARDNEM (Eq. 1-3) -------------------------------------------------------------------------------------------
def one_agent_earns_everything(seed: int = 0):
    """3 agents with random observations and actions; the team reward is 1 exactly when agent 1 plays action 1."""
    ds = make_dataset(n_agents=3, episodes=300, avail=False, seed=seed)
    ds.rewards[:] = (ds.actions[:, 1] == 1).astype(np.float32)[:, None]
    ds.refresh_card()
    return ds


def test_the_agent_whose_actions_earn_the_reward_dominates_the_decomposition():
    ds = one_agent_earns_everything()
    seed_everything(0)
    algo = make_algo("sit", ds.spec, **TINY, reward_lr=3e-3)
    sampler = algo.make_sampler(ds, seed=0)
    stage_one(algo, sampler, 300)
    weighted, _ = algo.decompose(ds)  # [T, n]
    share = weighted.abs().mean(dim=0)
    assert share[1] > 2 * share[0] and share[1] > 2 * share[2], share
    earned = torch.as_tensor(ds.actions[:, 1] == 1)
    assert weighted[earned, 1].mean() > weighted[~earned, 1].mean() + 0.5  # it is agent 1's action that pays


def test_attention_weights_are_a_softmax_over_agents_and_uniform_weights_are_one():
    torch.manual_seed(0)
    obs, actions, state = torch.randn(4, 7, 3, 5), torch.randn(4, 7, 3, 2), torch.randn(4, 7, 6)
    out = RewardDecomposition(5, 5, 2, 6, 3)(obs, actions, state)
    assert out.weighted.shape == (5, 4, 7, 3) and out.total.shape == (5, 4, 7)
    torch.testing.assert_close(out.weights.sum(dim=-1), torch.ones(5, 4, 7))
    torch.testing.assert_close(out.total, out.weighted.sum(dim=-1))  # Eq. 2
    uniform = RewardDecomposition(5, 5, 2, 6, 3, weighting="uniform")(obs, actions, state)
    assert (uniform.weights == 1).all()


def test_the_monotonic_variant_is_monotonic_in_every_agents_reward():
    """App. E.1, Eq. 15: ∂r_tot/∂r_i ≥ 0, and the reported credit weights are those slopes."""
    torch.manual_seed(0)
    model = RewardDecomposition(2, 5, 2, 6, 3, weighting="monotonic")
    rewards = torch.randn(2, 10, 3, requires_grad=True)
    state = torch.randn(10, 6)
    totals = torch.stack([mixer(rewards[m], state).squeeze(-1) for m, mixer in enumerate(model.mixers)])
    (grad,) = torch.autograd.grad(totals.sum(), rewards)
    assert (grad >= 0).all()
    slopes = torch.stack([mixer.agent_weights(rewards[m], state) for m, mixer in enumerate(model.mixers)])
    torch.testing.assert_close(grad, slopes)


def test_the_ensemble_is_less_certain_off_the_data():
    ds = one_agent_earns_everything()
    seed_everything(0)
    algo = make_algo("sit", ds.spec, **{**TINY, "members": 5}, reward_lr=3e-3)
    stage_one(algo, algo.make_sampler(ds, seed=0), 300)
    _, on_data = algo.decompose(ds)
    far = copy.deepcopy(ds)
    far.obs *= 8.0  # observations and states far outside the training data
    far.state *= 8.0
    _, off_data = algo.decompose(far)
    assert off_data.mean() > 3 * on_data.mean(), (on_data.mean(), off_data.mean())


def test_individual_credit_decomposes_the_members_unweighted_rewards():
    """credit="individual" (not in the paper): Stage II's r̂, û are the members' mean and spread of
    f(o_i, a_i) instead of Eq. 4-5's λ f; the default is Eq. 4."""
    ds = make_dataset(n_agents=3, episodes=6, seed=2)
    for credit in ("weighted", "individual"):
        seed_everything(0)
        algo = make_algo("sit", ds.spec, **TINY, credit=credit)
        obs, state = torch.as_tensor(ds.obs), torch.as_tensor(ds.state)
        with torch.no_grad():
            out = algo.reward_model(obs, algo._action_input(torch.as_tensor(ds.actions)), state)
        mean, spread = algo.decompose(ds)
        values = out.weighted if credit == "weighted" else out.rewards  # [M, T, n]
        torch.testing.assert_close(mean, values.mean(dim=0))
        torch.testing.assert_close(spread, values.std(dim=0, unbiased=False))
    torch.testing.assert_close(out.weighted, out.weights * out.rewards)
    with pytest.raises(ValueError, match="credit must be weighted or individual"):
        make_algo("sit", ds.spec, credit="lambda")


def test_eq_4_and_5_are_the_members_mean_and_population_std():
    weighted = torch.tensor([[1.0, 4.0], [3.0, 4.0], [5.0, 4.0]])  # [M = 3, 2]
    mean, spread = ensemble_statistics(weighted)
    torch.testing.assert_close(mean, torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(spread, torch.tensor([(8 / 3) ** 0.5, 0.0]))
    _, single = ensemble_statistics(weighted[:1])
    assert (single == 1).all()  # no ensemble: û = 1


# ---- DPER (Eq. 4-7) ---------------------------------------------------------------------------------------------
def test_eq_6_is_the_discounted_monte_carlo_return():
    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype=np.float32)
    out = discounted_returns(rewards, np.array([0, 3]), gamma=0.5)
    np.testing.assert_allclose(out, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 4 + 0.5 * 5, 5])


def test_priorities_reproduce_eq_7_on_a_hand_made_example():
    # two episodes (lengths 2 and 1), two agents; γ = 0.5
    rewards = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 4.0]], dtype=np.float32)
    scores = trajectory_priorities(rewards, np.array([0, 2]), gamma=0.5, high=20.0)
    g = {(0, 0): (1 + 0.5 * 2 + 2) / 2, (0, 1): 0.0, (1, 0): 0.0, (1, 1): 4.0}  # episode mean of ĝ
    low, top = 0.0, 4.0
    expected = np.array([[g[0, 0], g[0, 1]], [g[1, 0], g[1, 1]]])
    np.testing.assert_allclose(scores, (expected - low) * 20 / (top - low))
    alpha = 5.0
    p = softmax_priorities(scores.ravel(), alpha)
    np.testing.assert_allclose(p / p.sum(), np.exp(scores.ravel() / alpha) / np.exp(scores.ravel() / alpha).sum())


def replay_with_types(seed: int = 0):
    ds = make_dataset(n_agents=4, episodes=6, seed=seed)  # types: scout (agents 0, 2), worker (1, 3)
    return ds, DecomposedReplay(ds, batch_size=512, seed=seed)


def test_sampling_frequencies_match_the_softmax_and_types_stay_apart():
    ds, replay = replay_with_types()
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 20, size=(ds.n_episodes, 4))
    alpha = 4.0
    priorities = np.zeros_like(scores)
    for agents in replay.type_agents:
        priorities[:, agents] = softmax_priorities(scores[:, agents], alpha)
    replay.set_priorities(priorities)
    counts = np.zeros((4, ds.n_episodes, 4))  # trained agent, episode, source agent
    for _ in range(40):
        batch = replay.sample()
        for i in range(4):
            np.add.at(counts[i], (batch["episode_index"][i].numpy(), batch["source_agent"][i].numpy()), 1)
    types = np.asarray(ds.card.agent_types)
    for i in range(4):
        same = types == types[i]
        assert counts[i][:, ~same].sum() == 0  # only trajectories of agent i's type
        expected = np.exp(scores[:, same] / alpha) / np.exp(scores[:, same] / alpha).sum()  # Eq. 7 within the type
        freq = counts[i][:, same] / counts[i].sum()
        np.testing.assert_allclose(freq, expected, atol=0.02)


def test_the_replay_hands_out_the_source_agents_step_values():
    ds, replay = replay_with_types()
    values = np.arange(ds.n_steps * 4, dtype=np.float32).reshape(ds.n_steps, 4)
    replay.set_step_values(decomposed_reward=values)
    batch = replay.sample()
    starts = ds.episode_starts
    for i in range(4):
        for b in range(5):
            episode, source = int(batch["episode_index"][i, b]), int(batch["source_agent"][i, b])
            real = batch["mask"][i, b].numpy()
            steps = starts[episode] + np.arange(real.sum())
            np.testing.assert_array_equal(batch["decomposed_reward"][i, b].numpy()[real], values[steps, source])
            assert (batch["decomposed_reward"][i, b].numpy()[~real] == 0).all()
            np.testing.assert_array_equal(batch["obs"][i, b].numpy()[real], ds.obs[steps])  # the whole joint episode


def test_stage_two_prioritizes_within_each_type_over_priorities_rescaled_across_all_trajectories():
    """Algorithm 1 lines 7-16 through the algorithm: p̂ rescaled to [0, 20] over every individual trajectory
    (both types together), then Eq. 7's softmax with temperature α within each type; uniform_replay: uniform
    within each type."""
    ds = make_dataset(n_agents=4, episodes=12, seed=3)  # types scout (agents 0, 2), worker (1, 3)
    for ablation, alpha in ((None, 4.0), ("uniform_replay", 4.0)):
        seed_everything(0)
        algo = make_algo("sit", ds.spec, **TINY, alpha=alpha, ablation=ablation)
        stage_one(algo, algo.make_sampler(ds, seed=0), 3)
        algo.enter_stage("dper")
        algo.update({})
        dper = algo.dper
        weighted, _ = algo.decompose(ds)
        torch.testing.assert_close(dper["weighted_reward"], weighted)
        scores = dper["priority_score"].double().numpy()
        np.testing.assert_allclose(scores, trajectory_priorities(weighted.numpy(), ds.episode_starts, 0.99),
                                   rtol=1e-6)
        assert scores.min() == 0.0 and scores.max() == pytest.approx(20.0)
        probability = dper["sampling_probability"].numpy()
        for agents in ([0, 2], [1, 3]):
            block = scores[:, agents]
            expected = (np.exp(block / alpha) / np.exp(block / alpha).sum() if ablation is None
                        else np.full(block.shape, 1.0 / block.size))
            np.testing.assert_allclose(probability[:, agents], expected, rtol=1e-5)  # p̂ is stored as float32


def test_without_sharing_each_agent_replays_its_own_trajectories_by_eq_7_within_them():
    ds = make_dataset(n_agents=4, episodes=12, seed=3)
    seed_everything(0)
    algo = make_algo("sit", ds.spec, **TINY, alpha=4.0, share_trajectories=False)
    sampler = algo.make_sampler(ds, seed=0)
    stage_one(algo, sampler, 3)
    algo.enter_stage("dper")
    algo.update({})
    scores = algo.dper["priority_score"].double().numpy()
    expected = np.exp(scores / 4.0) / np.exp(scores / 4.0).sum(axis=0)  # Eq. 7 over each agent's column alone
    np.testing.assert_allclose(algo.dper["sampling_probability"].numpy(), expected, rtol=1e-5)
    assert algo.stage_artifact("dper").record["types"] == {"0": [0], "1": [1], "2": [2], "3": [3]}
    algo.enter_stage("policy")
    source = sampler.sample()["source_agent"]  # [n, B]
    assert (source == torch.arange(4)[:, None]).all()


# ---- Stage III (Eq. 8-10) ---------------------------------------------------------------------------------------
def test_the_filtered_actor_loss_equals_a_hand_computation():
    log_prob = torch.tensor([[[-0.5], [-1.0]], [[-2.0], [-0.1]]])  # [B = 2, L = 2, n = 1]
    advantage = torch.tensor([[[0.2], [-0.1]], [[0.0], [0.3]]])
    weights = torch.tensor([[[1.0], [2.0]], [[0.5], [0.0]]])
    mask = torch.tensor([[[True], [True]], [[True], [False]]])
    beta = 0.1
    e = np.exp(np.array([0.2, -0.1, 0.0]) / beta)
    f = 3 * e / e.sum()  # exp(A/β)/Z over the three valid steps, averaging 1
    expected = -(1.0 * f[0] * -0.5 + 2.0 * f[1] * -1.0 + 0.5 * f[2] * -2.0) / 3
    torch.testing.assert_close(crr_actor_loss(log_prob, advantage, weights, mask, beta),
                               torch.tensor([expected], dtype=torch.float32))


def test_an_infinite_beta_is_behaviour_cloning():
    torch.manual_seed(0)
    log_prob, advantage = -torch.rand(8, 5, 3), torch.randn(8, 5, 3) * 10
    mask = torch.rand(8, 5, 3) > 0.2
    ones = torch.ones(8, 5, 3)
    bc = ((-log_prob * mask).sum(dim=(0, 1)) / mask.sum(dim=(0, 1)))
    torch.testing.assert_close(crr_actor_loss(log_prob, advantage, ones, mask, beta=1e12), bc)


def test_uncertainty_weights_are_eta_over_u_clamped_at_a_fraction_of_the_batch_mean():
    u = torch.tensor([[[1.0], [1e-9]], [[2.0], [3.0]]])
    mask = torch.tensor([[[True], [True]], [[True], [False]]])
    w = uncertainty_weights(u, mask, eta=2.0, floor=1e-3)
    mean = (1.0 + 1e-9 + 2.0) / 3
    torch.testing.assert_close(w[..., 0], torch.tensor([[2.0, 2.0 / (1e-3 * mean)], [1.0, 0.0]]))


def test_the_critic_loss_is_the_uncertainty_weighted_td_error_by_hand():
    q = torch.tensor([[[1.0], [2.0]], [[0.5], [9.0]]])  # [B = 2, L = 2, n = 1]
    targets = torch.tensor([[[0.0], [1.0]], [[1.5], [0.0]]])
    weights = torch.tensor([[[2.0], [0.5]], [[1.0], [7.0]]])
    mask = torch.tensor([[[True], [True]], [[True], [False]]])
    expected = (2.0 * 1.0 + 0.5 * 1.0 + 1.0 * 1.0) / 3  # Eq. 9 over the valid steps
    torch.testing.assert_close(weighted_td_loss(q, targets, weights, mask), torch.tensor([expected]))


def policy_stage(updates: int = 0, **overrides):
    """A sit on a 4-agent, 2-type dataset, past Stage II, with ``updates`` Stage III updates done."""
    ds = make_dataset(n_agents=4, episodes=10, seed=1)
    seed_everything(0)
    algo = make_algo("sit", ds.spec, **{**TINY, **overrides})
    sampler = algo.make_sampler(ds, seed=0)
    algo.plan(6 + updates)
    for stage in ("ardnem", "dper", "policy"):
        algo.enter_stage(stage)
        for _ in range(algo.schedule.length(stage) if stage != "policy" else updates):
            algo.update(sampler.sample())
    return algo, sampler, ds


def test_agent_i_learns_from_agent_j_of_its_type_with_o_j_local_and_all_observations_in_the_graph():
    """Eq. 9-10's i(j): the critic of agent i reads o_j as its local input and the GAT reads every agent's
    observation of that episode; the actor of agent i runs over o_j."""
    algo, sampler, ds = policy_stage()
    batch = sampler.sample()  # [n, B, L, N, ...]
    seen = {}

    def record(name):
        def hook(module, args, out):  # the first call: the online critic on this batch
            seen.setdefault(name, args[0])  # returns None: the output is kept

        return hook

    algo.critic.local.register_forward_hook(record("local"))
    algo.critic.gat.register_forward_hook(record("graph"))
    algo.actor.register_forward_hook(record("actor"))
    algo.update(batch)
    source, types = batch["source_agent"], np.asarray(ds.card.agent_types)  # [n, B]
    assert (types[source.numpy()] == types[:, None]).all()  # j is always of i's type
    assert (source != torch.arange(4)[:, None]).any()  # and sometimes another agent
    obs = batch["obs"]  # [n, B, L, N, d]
    d = obs.shape[-1]
    for i in range(4):
        valid = batch["mask"][i].bool()  # [B, L] (past an episode's end the inputs are padding, masked out)
        own = obs[i, torch.arange(obs.shape[1]), :, source[i]]  # [B, L, d] o_j of row i's samples
        torch.testing.assert_close(seen["local"][:, :, i, :d][valid], own[valid])  # the critic's o^t of τ^t
        torch.testing.assert_close(seen["actor"][:, :-1, i][valid], own[valid])
        torch.testing.assert_close(seen["graph"][:, :-1, i][valid], obs[i][valid])  # the whole graph o_1 .. o_N


@pytest.mark.parametrize("previous_action", [True, False])
def test_the_critics_local_input_is_o_j_and_optionally_a_j_at_t_minus_1(previous_action):
    """f_local reads [o_j^t; one-hot a_j^{t-1}] (zeros at an episode's first step), or o_j^t alone when
    ``critic_previous_action`` is off."""
    algo, sampler, _ = policy_stage(critic_previous_action=previous_action)
    batch = sampler.sample()
    seen = []
    algo.critic.local.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    algo.update(batch)
    d, n_actions = batch["obs"].shape[-1], algo.spec.n_actions
    local = seen[0]  # [B, L, n, d (+ A)] the online critic's input on this batch
    assert local.shape[-1] == d + (n_actions if previous_action else 0)
    if previous_action:
        source = batch["source_agent"]  # [n, B]
        actions = batch["actions"][torch.arange(4)[:, None], torch.arange(source.shape[1])[None], :, source]
        previous = F.one_hot(actions[..., :-1], n_actions).float()  # [n, B, L - 1, A]
        for i in range(4):
            valid = batch["mask"][i, :, 1:].bool()
            torch.testing.assert_close(local[:, 1:, i, d:][valid], previous[i][valid])
        assert (local[:, 0, :, d:] == 0).all()


def test_the_target_critic_is_a_copy_every_target_update_interval_updates():
    algo, sampler, _ = policy_stage(updates=2, target_update_interval=3)
    differs = any(not torch.equal(a, b) for a, b in zip(algo.critic.state_dict().values(),
                                                        algo.target_critic.state_dict().values()))
    assert differs
    algo.update(sampler.sample())
    for a, b in zip(algo.critic.state_dict().values(), algo.target_critic.state_dict().values()):
        assert torch.equal(a, b)


def test_the_greedy_critic_target_backs_up_the_max_over_available_actions(monkeypatch):
    """critic_target greedy: max_a Q'(τ^{t+1}, a) over the available actions, so every target is at least the
    paper's (Q' at the data's own next action, or E_π Q' at a time limit)."""
    import offmarl.algos.sit as sit_module

    captured = {}
    original = sit_module.weighted_td_loss

    def capture(q, targets, weights, mask):
        captured["targets"], captured["mask"] = targets.detach().clone(), mask.clone()
        return original(q, targets, weights, mask)

    monkeypatch.setattr(sit_module, "weighted_td_loss", capture)
    targets = {}
    for kind in ("data", "greedy"):  # identical up to Stage III: the field acts in Eq. 9's target only
        algo, sampler, _ = policy_stage(critic_target=kind)
        algo.update(sampler.sample())
        targets[kind], mask = captured["targets"], captured["mask"]
    data, greedy = targets["data"][mask], targets["greedy"][mask]
    assert (greedy >= data - 1e-6).all() and (greedy > data + 1e-4).any()
    with pytest.raises(ValueError, match="critic_target must be data or greedy, got 'max'"):
        policy_stage(critic_target="max")
    ds = _toy_env.toy_dataset(episodes=4, seed=0, continuous=True)
    with pytest.raises(ValueError, match="critic_target greedy takes a max over actions: it needs discrete"):
        make_algo("sit", ds.spec, **{**TINY, "critic_target": "greedy"})


def trained(discrete: bool = True, updates: int = 20, **overrides):
    ds = _toy_env.toy_dataset(episodes=24, seed=0, continuous=not discrete)
    seed_everything(0)
    algo = make_algo("sit", ds.spec, **{**TINY, "steps": updates, **overrides})
    fit(algo, ds, None, TrainConfig(seed=0, progress=False))
    return algo, ds


@pytest.mark.parametrize("discrete", [True, False])
def test_agent_i_acts_on_its_own_history_only(discrete):
    """Decentralized execution: changing agent 1's observations, rewards (and action masks) over an episode
    changes agent 1's actions and nothing of agent 0's."""
    algo, ds = trained(discrete)
    rng = np.random.default_rng(0)
    B, steps = 8, 5
    obs = rng.normal(size=(steps, B, 2, 3)).astype(np.float32)
    rewards = rng.normal(size=(steps, B, 2)).astype(np.float32)
    avail = np.ones((steps, B, 2, 3), bool)
    other_obs, other_rewards, other_avail = obs.copy(), rewards.copy(), avail.copy()
    other_obs[:, :, 1] = rng.normal(size=(steps, B, 3))
    other_rewards[:, :, 1] = rng.normal(size=(steps, B))
    other_avail[:, :, 1] = [True, False, False]  # agent 1 may only play action 0
    actions = []
    for o, r, a in ((obs, rewards, avail), (other_obs, other_rewards, other_avail)):
        policy = algo.policies()
        policy.reset(B)
        acts = []
        for t in range(steps):
            ts = TimeStep(obs=o[t], state=np.zeros((B, 2), np.float32), reward=r[t], terminated=np.zeros(B, bool),
                          truncated=np.zeros(B, bool), avail_actions=a[t] if discrete else None)
            acts.append(policy.act(ts, first=t == 0))
        actions.append(np.stack(acts))
    np.testing.assert_array_equal(actions[0][:, :, 0], actions[1][:, :, 0])
    assert not np.array_equal(actions[0][:, :, 1], actions[1][:, :, 1])


def test_continuous_actions_train_through_all_three_stages():
    algo, _ = trained(discrete=False, updates=12)
    assert algo.stage == "policy" and algo.policy_updates > 0 and algo.dper is not None


# ---- the command: three stages, ablations, the variant ------------------------------------------------------------
OPTIONS = [None, *[("--ablation", a) for a in ABLATIONS], *[("--variant", v) for v in VARIANTS]]


@pytest.mark.parametrize("option", OPTIONS)
def test_offmarl_train_runs_the_three_stages(option, tmp_path):
    from offmarl.cli import app

    data = save_dataset(_toy_env.toy_dataset(episodes=12, seed=0), tmp_path / "toy.h5")
    run = tmp_path / "run"
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    result = CliRunner().invoke(app, ["train", "sit", "--dataset", str(data), "--out", str(run), "--steps", "8",
                                      "--eval-episodes", "2", "--quiet", *sets, *(option or ())])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["algo_label"] == "sit" + (f"[{option[1]}]" if option else "")
    assert (run / "ardnem" / "ardnem.pt").is_file() and (run / "dper" / "dper.pt").is_file()
    record = json.loads((run / "dper" / "dper.json").read_text())
    assert record["prioritized"] == (option != ("--ablation", "uniform_replay"))
    dper = torch.load(run / "dper" / "dper.pt", weights_only=True)
    assert dper["weighted_reward"].shape == (12 * 2, 2) or dper["weighted_reward"].shape[1] == 2
    torch.testing.assert_close(dper["sampling_probability"].sum(dim=0).sum(), torch.tensor(1.0, dtype=torch.float64))
    stages = [line.split(",")[1] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert stages[0] == "ardnem" and "dper" in stages and stages[-1] == "policy"


# ---- the figures: offmarl sit-report -------------------------------------------------------------------------------
def test_sit_report_plots_and_tabulates_the_decomposition_per_agent_and_level(tmp_path):
    """Fig. 3 as tool output: r̂ per agent over Stage I, the priority histograms per type, and a table whose
    per-level rows come from the dataset's recorded behaviour levels (kept by Stage II in dper.pt)."""
    from offmarl.cli import app
    from offmarl.collect.recipes import build_recipe

    ds = build_recipe("sit/mpe_cn_3ls3l/low/scripted", seed=0, scale=0.004)  # 40 episodes: 20 [r,r,r] + 20 [r,r,m]
    data = save_dataset(ds, tmp_path / "cn.h5")
    run = tmp_path / "run"
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "sit", "--dataset", str(data), "--out", str(run), "--steps", "12",
                                  "--eval-episodes", "1", "--quiet", *sets])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["sit-report", str(run), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    for name in ("weighted_reward.png", "priorities.png", "sit_report.json"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    report = json.loads((tmp_path / "report" / "sit_report.json").read_text())
    agents = report["agents"]
    assert [a["type"] for a in agents] == ds.card.agent_types and report["types"] == {"seeker": [0, 1, 2]}
    assert sum(a["sampling_share"] for a in agents) == pytest.approx(1.0)  # Eq. 7 normalises within the type
    assert agents[0]["levels"] == {"random": agents[0]["levels"]["random"]}
    assert agents[2]["levels"]["random"]["trajectories"] == agents[2]["levels"]["medium"]["trajectories"] == 20
    dper = torch.load(run / "dper" / "dper.pt", weights_only=True)
    assert agents[1]["mean_priority"] == pytest.approx(float(dper["priority_score"][:, 1].double().mean()))
    np.testing.assert_array_equal(dper["behavior_levels"].numpy(), ds.behavior_levels)
    medium = ds.behavior_levels[:, 2] == 1  # the [r, r, m] episodes: agent 2's medium trajectories
    assert agents[2]["levels"]["medium"]["mean_priority"] == pytest.approx(
        float(dper["priority_score"][medium, 2].double().mean()))

    not_sit = tmp_path / "bc"
    assert runner.invoke(app, ["train", "bc", "--dataset", str(data), "--out", str(not_sit), "--steps", "2",
                               "--eval-episodes", "1", "--quiet"]).exit_code == 0
    refused = runner.invoke(app, ["sit-report", str(not_sit)])
    assert refused.exit_code == 2 and "sit-report reads sit runs" in refused.output


def test_sit_report_levels_come_from_the_stored_array_else_from_the_cards_components():
    """A run whose Stage II kept the dataset's behavior_levels names them with the card's level names; a run
    trained on a file written before datasets stored them falls back to the card's composition components."""
    from offmarl.commands.sit_report import dataset_levels

    components = [{"levels": ["r", "r"], "episodes": 2}, {"levels": ["r", "m"], "episodes": 1}]
    card = {"behavior_level_names": ["low", "high"], "extra": {"components": components}}
    stored = {"behavior_levels": torch.tensor([[0, 1], [1, 1], [0, 0]], dtype=torch.uint8)}
    np.testing.assert_array_equal(dataset_levels({"dataset": card}, stored, 3),
                                  [["low", "high"], ["high", "high"], ["low", "low"]])
    old = {"dataset": {"behavior_level_names": None, "extra": {"components": components}}}
    np.testing.assert_array_equal(dataset_levels(old, {}, 3), [["random", "random"]] * 2 + [["random", "medium"]])
    assert dataset_levels(old, {}, 4) is None  # the components do not describe these episodes
    assert dataset_levels({"dataset": {"extra": {}}}, {}, 3) is None


# ---- the suites ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sit-table1", "sit-ablations", "sit-extreme", "sit-balanced", "sit-hyper",
                                  "sit-cn", "sit-2s3z", "sit-mamujoco"])
def test_the_sit_suites_name_known_recipes_algorithms_and_ablations(name):
    from pathlib import Path

    from offmarl.bench.suite import check_algorithms, check_datasets, load_suite

    suite = load_suite(Path(__file__).parents[1] / "benchmarks" / "suites" / f"{name}.yaml")
    check_algorithms(suite), check_datasets(suite)
    assert suite.cpu_scale and any(a.name == "sit" for a in suite.algorithms)
    spec = _toy_env.toy_dataset(episodes=2, seed=0).spec
    for entry in suite.algorithms:
        if entry.name == "sit":  # its actor-critic stage gets the baselines' 2000 updates, after 1000 of Stage I
            algo = make_algo("sit", spec, **entry.overrides, ablation=entry.ablation, variant=entry.variant)
            stage_one = 5000 if entry.tag == "ardnem5000" else 1000  # sit-cn's Stage I budget rows
            assert algo.plan(entry.steps or suite.steps).stages == (("ardnem", stage_one), ("dper", 1),
                                                                    ("policy", 2000))
