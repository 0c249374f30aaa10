"""Samplers of offmarl.data: transitions, windows, episodes, prioritized episodes,
per-agent slices, state dicts and the state-only refusal."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from gymnasium import spaces
from scipy.stats import chisquare

from offmarl.data.dataset import DatasetCard, MultiAgentDataset
from offmarl.data.returns import returns_to_go
from offmarl.data.samplers import (
    EpisodeSampler,
    PrioritizedEpisodeSampler,
    TransitionSampler,
    WindowSampler,
    agent_slice,
    softmax_priorities,
)
from offmarl.data.validate import validate_dataset
from offmarl.envs.base import EnvSpec
from offmarl.errors import DatasetError

# Hand-built dataset: 2 agents (obs widths 3 and 2, padded to 3), 4 discrete actions with masks,
# state width 2, episodes of lengths 3 (terminated), 4 (truncated), 2 (terminated) -> T = 9.
LENGTHS = [3, 4, 2]
STARTS = np.array([0, 3, 7])
EPISODE_OF_STEP = np.repeat(np.arange(3), LENGTHS)
TERMINAL_EPISODES = [0, 2]


def make_card(n_agents: int, obs_dims: list[int], discrete: bool, state_dim: int) -> DatasetCard:
    space = spaces.Discrete(4) if discrete else spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
    spec = EnvSpec(name="hand", n_agents=n_agents, obs_dim=max(obs_dims), obs_dims=tuple(obs_dims),
                   state_dim=state_dim, action_space=space, episode_limit=4,
                   agent_types=tuple(f"type{i}" for i in range(n_agents)), has_avail_actions=discrete)
    return DatasetCard(env_name="hand", env_kwargs={}, env_spec=spec.to_dict(), n_agents=n_agents,
                       agent_types=list(spec.agent_types), obs_dims=list(obs_dims),
                       action_kind="discrete" if discrete else "continuous")


def make_dataset(discrete: bool = True, with_actions: bool = True) -> MultiAgentDataset:
    """obs[t, i, k] = 100 t + 10 i + k (zero in agent 1's padding), final_obs[e, i, k] = 1000 + 100 e + 10 i + k,
    state[t] = [t, -t], final_state[e] = [500 + e, -500 - e], rewards[t] = [t + 1, 0.5 t]."""
    T, n = 9, 2
    t = np.arange(T)[:, None, None]
    obs = (100 * t + 10 * np.arange(n)[None, :, None] + np.arange(3)[None, None, :]).astype(np.float32)
    obs[:, 1, 2] = 0.0
    final_obs = (1000 + 100 * np.arange(3)[:, None, None] + 10 * np.arange(n)[None, :, None]
                 + np.arange(3)[None, None, :]).astype(np.float32)
    final_obs[:, 1, 2] = 0.0
    terminals = np.zeros(T, bool)
    truncations = np.zeros(T, bool)
    ends = STARTS + np.array(LENGTHS) - 1
    terminals[ends[TERMINAL_EPISODES]] = True
    truncations[ends[1]] = True
    rewards = np.stack([np.arange(T) + 1.0, 0.5 * np.arange(T)], axis=1).astype(np.float32)
    if discrete:
        actions = (np.arange(T * n).reshape(T, n) % 4).astype(np.int64)
        avail = np.ones((T, n, 4), bool)
        avail[:, :, 3] = False
        avail[actions == 3] = True  # keep every taken action available
    else:
        actions = np.linspace(-1, 1, T * n * 2, dtype=np.float32).reshape(T, n, 2)
        avail = None
    ds = MultiAgentDataset(
        obs=obs, rewards=rewards, terminals=terminals, truncations=truncations, episode_starts=STARTS.copy(),
        final_obs=final_obs, card=make_card(n, [3, 2], discrete, 2), actions=actions if with_actions else None,
        state=np.stack([np.arange(T), -np.arange(T)], axis=1).astype(np.float32),
        final_state=np.array([[500 + e, -500 - e] for e in range(3)], np.float32), avail_actions=avail,
    )
    ds.refresh_card()
    return ds


def step_of(obs: torch.Tensor) -> np.ndarray:
    """Decode the flat step index from agent 0's first feature (100 t)."""
    return (obs[..., 0, 0].numpy() / 100).round().astype(np.int64)


def torch_round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def assert_batches_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


# ---- transitions -------------------------------------------------------------------------------
def test_transition_keys_shapes_dtypes():
    batch = TransitionSampler(make_dataset(), batch_size=5, seed=0).sample()
    shapes = {"obs": (5, 2, 3), "next_obs": (5, 2, 3), "actions": (5, 2), "rewards": (5, 2), "done": (5,),
              "state": (5, 2), "next_state": (5, 2), "avail": (5, 2, 4), "next_avail": (5, 2, 4), "timestep": (5,)}
    assert {k: tuple(v.shape) for k, v in batch.items()} == shapes
    dtypes = {"actions": torch.int64, "timestep": torch.int64, "avail": torch.bool, "next_avail": torch.bool}
    for key, value in batch.items():
        assert value.dtype == dtypes.get(key, torch.float32), key
    cont = TransitionSampler(make_dataset(discrete=False), batch_size=5, seed=0).sample()
    assert cont["actions"].shape == (5, 2, 2) and cont["actions"].dtype == torch.float32
    assert "avail" not in cont


def test_transition_next_obs_done_and_avail_at_episode_ends():
    ds = make_dataset()
    batch = TransitionSampler(ds, batch_size=9, seed=0).batch_at(np.arange(9))
    ends = STARTS + np.array(LENGTHS) - 1
    for t in range(9):
        e = EPISODE_OF_STEP[t]
        if t in ends:
            np.testing.assert_array_equal(batch["next_obs"][t].numpy(), ds.final_obs[e])
            np.testing.assert_array_equal(batch["next_state"][t].numpy(), ds.final_state[e])
            assert batch["next_avail"][t].all()
        else:
            np.testing.assert_array_equal(batch["next_obs"][t].numpy(), ds.obs[t + 1])
            np.testing.assert_array_equal(batch["next_state"][t].numpy(), ds.state[t + 1])
            np.testing.assert_array_equal(batch["next_avail"][t].numpy(), ds.avail_actions[t + 1])
    # done only on true terminals (steps 2 and 8); the truncated last step 6 bootstraps
    np.testing.assert_array_equal(batch["done"].numpy(), [0, 0, 1, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(batch["timestep"].numpy(), [0, 1, 2, 0, 1, 2, 3, 0, 1])
    np.testing.assert_array_equal(batch["rewards"].numpy(), ds.rewards)


def test_transition_sample_is_uniform_over_steps():
    sampler = TransitionSampler(make_dataset(), batch_size=1000, seed=3)
    counts = np.bincount(np.concatenate([step_of(sampler.sample()["obs"]) for _ in range(9)]), minlength=9)
    assert chisquare(counts).pvalue > 0.001


# ---- per-agent slices --------------------------------------------------------------------------
def test_agent_slice_arrays_and_card():
    ds = make_dataset()
    one = agent_slice(ds, 1)
    assert one.n_agents == 1 and one.state is None and one.final_state is None
    np.testing.assert_array_equal(one.obs[:, 0], ds.obs[:, 1, :2])  # trimmed to the true width 2
    np.testing.assert_array_equal(one.final_obs[:, 0], ds.final_obs[:, 1, :2])
    np.testing.assert_array_equal(one.actions[:, 0], ds.actions[:, 1])
    np.testing.assert_array_equal(one.avail_actions[:, 0], ds.avail_actions[:, 1])
    np.testing.assert_array_equal(one.episode_starts, STARTS)
    card = one.card
    assert (card.n_agents, card.obs_dims, card.agent_types) == (1, [2], ["type1"])
    spec = card.spec
    assert (spec.n_agents, spec.obs_dim, spec.obs_dims, spec.state_dim) == (1, 2, (2,), 0)
    assert card.extra["agent_slice"] == {"agent": 1, "n_agents": 2}
    assert DatasetCard.from_dict(card.to_dict()).n_agents == 1  # a valid one-agent card
    assert card.return_mean == pytest.approx(ds.episode_returns()[:, 1].mean())
    assert ds.card.n_agents == 2  # the joint card is untouched
    padded = agent_slice(ds, 1, trim_obs=False)
    assert padded.obs.shape == (9, 1, 3) and padded.card.obs_dims == [3]
    assert one.behavior_levels is None and one.card.behavior_level_names is None
    ds.behavior_levels = np.array([[0, 1], [1, 0], [0, 0]], dtype=np.uint8)[:ds.n_episodes]  # agent 1: 1, 0, 0
    ds.card.behavior_level_names = ["random", "expert"]
    one = agent_slice(ds, 1)
    np.testing.assert_array_equal(one.behavior_levels, ds.behavior_levels[:, 1:])  # [E, 1]: agent 1's own levels
    assert one.card.behavior_level_names == ["random", "expert"]
    validate_dataset(one)
    with pytest.raises(ValueError, match=r"agent must be an integer in \[0, 2\)"):
        agent_slice(ds, 2)


def test_per_agent_view_shapes_and_no_state():
    ds = make_dataset()
    tr = TransitionSampler(ds, batch_size=4, seed=0, agent=1).sample()
    assert {k: tuple(v.shape) for k, v in tr.items()} == {
        "obs": (4, 1, 2), "next_obs": (4, 1, 2), "actions": (4, 1), "rewards": (4, 1), "done": (4,),
        "avail": (4, 1, 4), "next_avail": (4, 1, 4), "timestep": (4,)}
    win = WindowSampler(ds, batch_size=4, seed=0, K=3, agent=0).sample()
    assert {k: tuple(v.shape) for k, v in win.items()} == {
        "obs": (4, 3, 1, 3), "actions": (4, 3, 1), "rewards": (4, 3, 1), "rtg": (4, 3, 1), "team_rtg": (4, 3),
        "episode_rtg": (4, 3, 1), "timesteps": (4, 3), "avail": (4, 3, 1, 4), "mask": (4, 3)}
    ep = EpisodeSampler(ds, batch_size=4, seed=0, agent=1).sample()
    assert ep["obs"].shape == (4, 4, 1, 2) and "state" not in ep and "next_state" not in ep


def test_changing_other_agents_data_leaves_agent_slice_and_batches_unchanged():
    ds = make_dataset()
    other = make_dataset()
    rng = np.random.default_rng(0)
    other.obs[:, 0] = rng.normal(size=other.obs[:, 0].shape)
    other.final_obs[:, 0] = rng.normal(size=other.final_obs[:, 0].shape)
    other.actions[:, 0] = (other.actions[:, 0] + 1) % 3
    other.rewards[:, 0] = rng.normal(size=9)
    other.avail_actions[:, 0] = True
    other.state[:] = rng.normal(size=other.state.shape)
    other.final_state[:] = 7.0
    a, b = agent_slice(ds, 1), agent_slice(other, 1)
    for name in ("obs", "final_obs", "actions", "rewards", "avail_actions"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for make in (lambda d: TransitionSampler(d, 16, seed=5, agent=1),
                 lambda d: WindowSampler(d, 16, seed=5, K=3, agent=1),
                 lambda d: EpisodeSampler(d, 16, seed=5, agent=1),
                 lambda d: PrioritizedEpisodeSampler(d, 16, seed=5, agent=1)):
        sa, sb = make(ds), make(other)
        for _ in range(3):
            assert_batches_equal(sa.sample(), sb.sample())
    # the joint sampler does see the change (the test above could not pass vacuously)
    assert not torch.equal(TransitionSampler(ds, 16, seed=5).sample()["obs"],
                           TransitionSampler(other, 16, seed=5).sample()["obs"])


# ---- windows -----------------------------------------------------------------------------------
def test_window_at_episode_start_is_left_padded():
    ds = make_dataset()
    sampler = WindowSampler(ds, batch_size=2, seed=0, K=4, reward_scale=0.5)
    batch = sampler.batch_at(np.array([1, 7]))  # step 1 of episode 0; step 0 of episode 2
    np.testing.assert_array_equal(batch["mask"].numpy(), [[0, 0, 1, 1], [0, 0, 0, 1]])
    np.testing.assert_array_equal(batch["timesteps"].numpy(), [[0, 0, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(batch["obs"][0].numpy(),
                                  np.stack([np.zeros((2, 3)), np.zeros((2, 3)), ds.obs[0], ds.obs[1]]))
    np.testing.assert_array_equal(batch["obs"][1, 3].numpy(), ds.obs[7])
    assert not batch["obs"][1, :3].any() and not batch["rewards"][1, :3].any()
    np.testing.assert_array_equal(batch["actions"][0].numpy(), [[0, 0], [0, 0], ds.actions[0], ds.actions[1]])
    assert batch["avail"][0, :2].all()  # pads fully available
    np.testing.assert_array_equal(batch["avail"][0, 2:].numpy(), ds.avail_actions[:2])
    # episode 0 rewards: agent 0 [1, 2, 3], agent 1 [0, 0.5, 1]; rtg at steps 0, 1 (x 0.5):
    # agent 0: 6, 5 -> 3, 2.5; agent 1: 1.5, 1.5 -> 0.75, 0.75; team: 7.5, 6.5 -> 3.75, 3.25
    np.testing.assert_array_equal(batch["rtg"][0].numpy(), [[0, 0], [0, 0], [3, 0.75], [2.5, 0.75]])
    np.testing.assert_array_equal(batch["team_rtg"][0].numpy(), [0, 0, 3.75, 3.25])
    np.testing.assert_array_equal(batch["episode_rtg"][0].numpy(), [[0, 0], [0, 0], [3, 0.75], [3, 0.75]])
    # episode 2 (steps 7, 8) rewards: agent 0 [8, 9], agent 1 [3.5, 4] -> rtg at step 7: 17, 7.5 (x 0.5)
    np.testing.assert_array_equal(batch["rtg"][1, 3].numpy(), [8.5, 3.75])
    assert "state" in batch and not batch["state"][0, :2].any()
    np.testing.assert_array_equal(batch["state"][0, 2:].numpy(), ds.state[:2])


def test_window_mid_episode_is_full():
    ds = make_dataset()
    batch = WindowSampler(ds, batch_size=1, seed=0, K=3).batch_at(np.array([5]))  # episode 1 = steps 3..6
    assert batch["mask"].all()
    np.testing.assert_array_equal(batch["timesteps"].numpy(), [[0, 1, 2]])
    np.testing.assert_array_equal(batch["obs"][0].numpy(), ds.obs[3:6])
    np.testing.assert_array_equal(batch["rewards"][0].numpy(), ds.rewards[3:6])
    # episode 1 rewards: agent 0 [4, 5, 6, 7], agent 1 [1.5, 2, 2.5, 3]
    np.testing.assert_array_equal(batch["rtg"][0].numpy(), [[22, 9], [18, 7.5], [13, 5.5]])
    np.testing.assert_array_equal(batch["team_rtg"][0].numpy(), [31, 25.5, 18.5])
    # the episode's return (its rtg at step 3) at every position: rtg - episode_rtg = -(return before the step)
    np.testing.assert_array_equal(batch["episode_rtg"][0].numpy(), [[22, 9]] * 3)


def test_windows_never_cross_episode_boundaries():
    ds = make_dataset()
    sampler = WindowSampler(ds, batch_size=64, seed=1, K=5)
    rtg = returns_to_go(ds.rewards, ds.episode_starts)
    for _ in range(30):
        batch = sampler.sample()
        mask = batch["mask"].numpy()
        steps = step_of(batch["obs"])  # [B, K]; pads decode to 0 and are ignored
        assert mask[:, -1].all()  # the sampled step is always the last, real position
        assert (np.diff(mask.astype(int), axis=1) >= 0).all()  # pads only on the left
        for row, m in zip(steps, mask):
            real = row[m]
            assert (np.diff(real) == 1).all()
            assert len(set(EPISODE_OF_STEP[real])) == 1
        np.testing.assert_array_equal(batch["timesteps"].numpy()[mask], (steps - STARTS[EPISODE_OF_STEP[steps]])[mask])
        np.testing.assert_array_equal(batch["rtg"].numpy()[mask], rtg[steps[mask]])
        np.testing.assert_allclose(batch["team_rtg"].numpy(), batch["rtg"].numpy().sum(-1), rtol=1e-6)


def test_window_sampler_continuous_actions():
    batch = WindowSampler(make_dataset(discrete=False), batch_size=3, seed=0, K=4).batch_at(np.array([0, 4, 8]))
    assert batch["actions"].shape == (3, 4, 2, 2) and batch["actions"].dtype == torch.float32
    assert not batch["actions"][0, :3].any() and "avail" not in batch


# ---- episodes ----------------------------------------------------------------------------------
def test_episode_sampler_pads_on_the_right():
    ds = make_dataset()
    sampler = EpisodeSampler(ds, batch_size=32, seed=0)
    assert sampler.max_len == 4
    batch = sampler.sample()
    assert batch["obs"].shape == (32, 4, 2, 3) and batch["done"].shape == (32, 4)
    for b in range(32):
        e = int(batch["episode_index"][b])
        length, start = LENGTHS[e], STARTS[e]
        np.testing.assert_array_equal(batch["mask"][b].numpy(), np.arange(4) < length)
        np.testing.assert_array_equal(batch["obs"][b, :length].numpy(), ds.obs[start:start + length])
        np.testing.assert_array_equal(batch["next_obs"][b, length - 1].numpy(), ds.final_obs[e])
        np.testing.assert_array_equal(batch["timestep"][b, :length].numpy(), np.arange(length))
        assert batch["done"][b].sum() == (1.0 if e in TERMINAL_EPISODES else 0.0)
        assert batch["done"][b, length - 1] == (1.0 if e in TERMINAL_EPISODES else 0.0)
        assert not batch["obs"][b, length:].any() and not batch["rewards"][b, length:].any()
        assert batch["avail"][b, length:].all() and batch["next_avail"][b, length - 1:].all()
    assert set(batch["episode_index"].tolist()) == {0, 1, 2}


def test_episode_sampler_crops_long_episodes():
    ds = make_dataset()
    batch = EpisodeSampler(ds, batch_size=64, seed=0, max_len=2).sample()
    assert batch["mask"].all()
    offsets = batch["timestep"][:, 0].numpy()
    ep = batch["episode_index"].numpy()
    assert set(offsets[ep == 1]) == {0, 1, 2}  # a 4-step episode has three 2-step crops
    for b in np.flatnonzero(ep == 1):
        t = STARTS[1] + offsets[b]
        np.testing.assert_array_equal(batch["obs"][b].numpy(), ds.obs[t:t + 2])
        expected_next = ds.final_obs[1] if offsets[b] == 2 else ds.obs[t + 2]
        np.testing.assert_array_equal(batch["next_obs"][b, 1].numpy(), expected_next)
        assert not batch["done"][b].any()  # episode 1 is truncated: never done


# ---- prioritized episodes ----------------------------------------------------------------------
def test_prioritized_frequencies_follow_priorities_chi_square():
    ds = make_dataset()
    priorities = np.array([1.0, 0.0, 4.0])
    sampler = PrioritizedEpisodeSampler(ds, batch_size=20000, seed=0, alpha=0.5, priorities=priorities)
    batch = sampler.sample()
    counts = np.bincount(batch["episode_index"].numpy(), minlength=3)
    assert counts[1] == 0
    expected = 20000 * np.array([1.0, 2.0]) / 3.0  # p^0.5 = 1, 2
    assert chisquare(counts[[0, 2]], expected).pvalue > 0.001
    np.testing.assert_array_equal(batch["weights"].numpy(), np.ones(20000, np.float32))  # beta = 0
    sampler.update_priorities(np.array([0, 1, 2]), np.array([0.0, 9.0, 0.0]))
    np.testing.assert_array_equal(sampler.priorities, [0.0, 9.0, 0.0])
    assert set(sampler.sample()["episode_index"].tolist()) == {1}


def test_prioritized_importance_weights_by_hand():
    ds = make_dataset()
    sampler = PrioritizedEpisodeSampler(ds, batch_size=4000, seed=0, priorities=np.array([1.0, 3.0, 0.0]), beta=1.0)
    batch = sampler.sample()
    # P = [1/4, 3/4]; w = (N P)^-1 = [4/3, 4/9]; / max -> [1, 1/3]
    w = batch["weights"].numpy()
    np.testing.assert_allclose(w[batch["episode_index"].numpy() == 0], 1.0)
    np.testing.assert_allclose(w[batch["episode_index"].numpy() == 1], 1 / 3, rtol=1e-6)


def test_prioritized_individual_trajectories_of_agents():
    ds = make_dataset()
    # items: k = position * E + e over agents [1, 0] -> k 0..2 are agent 1's episodes, 3..5 agent 0's
    priorities = np.array([0, 0, 1, 1, 0, 0], float)
    sampler = PrioritizedEpisodeSampler(ds, batch_size=200, seed=0, agents=[1, 0], priorities=priorities)
    batch = sampler.sample()
    pairs = set(zip(batch["agent"].tolist(), batch["episode_index"].tolist()))
    assert pairs == {(1, 2), (0, 0)}
    np.testing.assert_array_equal(batch["item_index"].numpy() % 3, batch["episode_index"].numpy())
    assert batch["obs"].shape[2] == 2  # the joint episode, so a critic may read the other agents


def test_softmax_priorities():
    p = softmax_priorities(np.array([0.0, 1.0, 2.0]), temperature=0.5)
    np.testing.assert_allclose(p / p.sum(), np.exp([0, 2, 4]) / np.exp([0, 2, 4]).sum())
    with pytest.raises(ValueError, match="temperature must be > 0"):
        softmax_priorities(np.zeros(2), 0.0)


# ---- reproducibility ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda ds, seed: TransitionSampler(ds, 8, seed),
    lambda ds, seed: WindowSampler(ds, 8, seed, K=3, reward_scale=0.1),
    lambda ds, seed: EpisodeSampler(ds, 8, seed, max_len=3),
    lambda ds, seed: PrioritizedEpisodeSampler(ds, 8, seed, alpha=0.7, beta=0.4),
], ids=["transition", "window", "episode", "prioritized"])
def test_state_dict_round_trip_through_torch_weights_only(make):
    ds = make_dataset()
    sampler = make(ds, 11)
    for _ in range(2):
        sampler.sample()
    if isinstance(sampler, PrioritizedEpisodeSampler):
        sampler.update_priorities(np.array([0, 2]), np.array([0.25, 5.0]))
    state = torch_round_trip(sampler.state_dict())
    expected = [sampler.sample() for _ in range(3)]
    restored = make(ds, 999)
    restored.load_state_dict(state)
    for want in expected:
        assert_batches_equal(restored.sample(), want)
    if isinstance(sampler, PrioritizedEpisodeSampler):
        np.testing.assert_array_equal(restored.priorities, [0.25, 1.0, 5.0])


def test_load_state_dict_of_another_sampler_is_refused():
    ds = make_dataset()
    with pytest.raises(ValueError, match="got the state of a 'TransitionSampler'"):
        WindowSampler(ds, 2, 0).load_state_dict(TransitionSampler(ds, 2, 0).state_dict())


# ---- refusals ----------------------------------------------------------------------------------
def test_state_only_dataset_is_refused_by_samplers_that_need_actions():
    ds = make_dataset(with_actions=False)
    for cls in (TransitionSampler, WindowSampler, EpisodeSampler, PrioritizedEpisodeSampler):
        with pytest.raises(DatasetError,
                           match=rf"^{cls.__name__} needs actions, but the dataset of env 'hand' is state-only"):
            cls(ds, 4, 0)
    batch = TransitionSampler(ds, 4, 0, require_actions=False).sample()
    assert "actions" not in batch and batch["next_obs"].shape == (4, 2, 3)


def test_bad_arguments_name_the_problem():
    ds = make_dataset()
    with pytest.raises(ValueError, match="TransitionSampler: batch_size must be a positive integer, got 0"):
        TransitionSampler(ds, 0, 0)
    with pytest.raises(ValueError, match="WindowSampler: K must be a positive integer, got 0"):
        WindowSampler(ds, 2, 0, K=0)
    with pytest.raises(ValueError, match=r"agent must be an integer in \[0, 2\)"):
        WindowSampler(ds, 2, 0, agent=5)
    with pytest.raises(ValueError, match=r"step indices must lie in \[0, 9\)"):
        TransitionSampler(ds, 2, 0).batch_at(np.array([9]))
    with pytest.raises(ValueError, match="all priorities would be zero"):
        PrioritizedEpisodeSampler(ds, 2, 0, priorities=np.zeros(3))
    with pytest.raises(ValueError, match=r"priorities must have shape \[3\] \(one per item\), got \[2\]"):
        PrioritizedEpisodeSampler(ds, 2, 0, priorities=np.ones(2))
    sampler = PrioritizedEpisodeSampler(ds, 2, 0, priorities=np.array([0.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="all priorities would be zero"):
        sampler.update_priorities(np.array([1]), np.array([0.0]))
    np.testing.assert_array_equal(sampler.priorities, [0.0, 2.0, 0.0])  # rolled back
    assert sampler.sample()["episode_index"].tolist() == [1, 1]
