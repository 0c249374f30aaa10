"""Small hand-built datasets for tests (import with ``from _datasets import make_dataset``).

Everything is seeded and tiny. The datasets are valid by construction (``validate_dataset`` passes):
varying episode lengths, episodes that hit ``EPISODE_LIMIT`` are truncated and shorter ones terminated,
the last episode is always truncated, agent 1 has a smaller observation (zero-padded), rewards are
multiples of 0.5 (exact in float32, so hand-computed returns compare with ``==``). Their environment is
``external:toy_grid`` (no registered env: the loader checks shapes and dtypes only); ``collected_dataset``
gives one of a registered env.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from offmarl.data.dataset import DatasetCard, MultiAgentDataset
from offmarl.envs.base import EnvSpec

ENV_NAME = "external:toy_grid"  # hand-built arrays of no registered env: checked for shapes and dtypes only
ENV_KWARGS: dict[str, Any] = {"size": 5}
EPISODE_LIMIT = 6
OBS_DIM = 6
SMALL_OBS_DIM = 4  # agent 1's true observation width
STATE_DIM = 4
N_ACTIONS = 5
ACT_DIM = 2
AGENT_TYPES = ("scout", "worker")


def obs_dims_for(n_agents: int) -> list[int]:
    """Agent 1 (when present) observes SMALL_OBS_DIM features, every other agent OBS_DIM."""
    return [SMALL_OBS_DIM if i == 1 else OBS_DIM for i in range(n_agents)]


def make_spec(n_agents: int = 3, discrete: bool = True, state: bool = True, avail: bool = True) -> EnvSpec:
    """A plausible EnvSpec of the toy env the datasets come from."""
    space: spaces.Space = (spaces.Discrete(N_ACTIONS) if discrete
                           else spaces.Box(low=-1.0, high=1.0, shape=(ACT_DIM,), dtype=np.float32))
    return EnvSpec(
        name=ENV_NAME, n_agents=n_agents, obs_dim=OBS_DIM, obs_dims=tuple(obs_dims_for(n_agents)),
        state_dim=STATE_DIM if state else 0, action_space=space, episode_limit=EPISODE_LIMIT,
        agent_types=tuple(AGENT_TYPES[i % 2] for i in range(n_agents)),
        has_avail_actions=discrete and avail, kwargs=dict(ENV_KWARGS),
    )


def _padded_normal(rng: np.random.Generator, rows: int, obs_dims: list[int]) -> np.ndarray:
    x = rng.normal(size=(rows, len(obs_dims), OBS_DIM)).astype(np.float32)
    x[:, np.arange(OBS_DIM)[None, :] >= np.asarray(obs_dims)[:, None]] = 0.0
    return x


LEVEL_NAMES = ["random", "medium", "expert"]


def make_dataset(n_agents: int = 3, episodes: int = 4, discrete: bool = True, state: bool = True,
                 avail: bool = True, state_only: bool = False, seed: int = 0,
                 levels: bool = False) -> MultiAgentDataset:
    """A valid dataset of ``episodes`` episodes (lengths 2..EPISODE_LIMIT) with a refreshed card.

    ``avail`` only matters for discrete actions; ``state_only`` drops the actions (avail masks stay
    when requested); ``levels`` adds ``behavior_levels`` (random indices into :data:`LEVEL_NAMES`, drawn
    after everything else, so the other arrays do not change).
    """
    rng = np.random.default_rng(seed)
    spec = make_spec(n_agents, discrete, state, avail)
    obs_dims = list(spec.obs_dims)

    lengths = rng.integers(2, EPISODE_LIMIT + 1, size=episodes)
    lengths[-1] = EPISODE_LIMIT  # the last episode runs into the time limit
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    T = int(lengths.sum())
    last = starts + lengths - 1
    terminals = np.zeros(T, dtype=bool)
    truncations = np.zeros(T, dtype=bool)
    terminals[last[lengths < EPISODE_LIMIT]] = True
    truncations[last[lengths == EPISODE_LIMIT]] = True

    avail_actions = None
    if discrete:
        if avail:
            avail_actions = rng.random((T, n_agents, N_ACTIONS)) < 0.6
            avail_actions[..., 0] = True  # the no-op is always available
        # sample uniformly among available actions
        scores = rng.random((T, n_agents, N_ACTIONS))
        if avail_actions is not None:
            scores[~avail_actions] = -1.0
        actions = scores.argmax(axis=-1).astype(np.int64)
    else:
        actions = rng.uniform(-1.0, 1.0, size=(T, n_agents, ACT_DIM)).astype(np.float32)

    card = DatasetCard(
        env_name=ENV_NAME, env_kwargs=dict(ENV_KWARGS), env_spec=spec.to_dict(), n_agents=n_agents,
        agent_types=list(spec.agent_types), obs_dims=obs_dims,
        action_kind="discrete" if discrete else "continuous",
        behavior={"policy": "random", "noise": 0.0}, quality_tier="poor", state_only=state_only, seed=seed,
        recipe=None, extra={"note": "hand-built test dataset"},
    )
    ds = MultiAgentDataset(
        obs=_padded_normal(rng, T, obs_dims),
        rewards=(rng.integers(-2, 3, size=(T, n_agents)) * 0.5).astype(np.float32),
        terminals=terminals, truncations=truncations, episode_starts=starts,
        final_obs=_padded_normal(rng, episodes, obs_dims), card=card,
        actions=None if state_only else actions,
        state=rng.normal(size=(T, STATE_DIM)).astype(np.float32) if state else None,
        final_state=rng.normal(size=(episodes, STATE_DIM)).astype(np.float32) if state else None,
        avail_actions=avail_actions,
    )
    if levels:
        ds.behavior_levels = rng.integers(0, len(LEVEL_NAMES), size=(episodes, n_agents)).astype(np.uint8)
        ds.card.behavior_level_names = list(LEVEL_NAMES)
    ds.refresh_card()
    return ds


def collected_dataset(env_name: str = "mpe_cn_3ls3l", episodes: int = 3, seed: int = 0,
                      **env_kwargs: Any) -> MultiAgentDataset:
    """``episodes`` episodes of the random policy in registered env ``env_name``: a card that names a real
    environment, which the loader checks against the registry."""
    from offmarl.collect.rollout import rollout
    from offmarl.envs import make_env
    from offmarl.policies.random import RandomPolicy

    env = make_env(env_name, num_envs=min(episodes, 4), seed=seed, **env_kwargs)
    return rollout(env, RandomPolicy(env.spec, seed), episodes, seed, progress=False, behavior={"policy": "random"})
