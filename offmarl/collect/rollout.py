"""Roll a joint behaviour policy out in a batched env and assemble a :class:`MultiAgentDataset`.

The loop is the rollout engine's (:func:`offmarl.collect.engine.play`), vectorized over the ``B`` sub-envs
(one ``policy.act`` and one ``env.step`` per time step);
per-step arrays ``[B, ...]`` are stacked to ``[S, B, ...]`` and reordered into the flat episode layout
with one ``argsort`` at the end.

Which episodes are kept. Every episode gets an id when it *starts*, in order of (start step, sub-env
index): ids ``0..B-1`` at the reset, then the sub-envs auto-reset at a step get the next ids in index
order. The dataset holds episodes ``0..N-1`` in id order, and the rollout runs until all of them have
ended; the unfinished episodes (and those with id ``>= N``) are discarded. Keeping the first ``N``
*started* episodes rather than the first ``N`` to *finish* avoids favouring short episodes in envs
whose episodes end early (a termination), since which episodes start first does not depend on how
they go.

The policy sees ``first=True`` on its first call, and ``reset(B, mask)`` with the auto-reset sub-envs
after every step in which some ended.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from offmarl.collect.engine import play
from offmarl.core.seeding import derive_seed  # noqa: F401  (re-exported: the collectors import it from here)
from offmarl.data.dataset import DatasetCard, MultiAgentDataset
from offmarl.envs.base import BatchedEnv, EnvSpec
from offmarl.policies.base import JointPolicy


def make_card(spec: EnvSpec, *, behavior: dict[str, Any], seed: int | None, state_only: bool = False,
              quality_tier: str | None = None, recipe: str | None = None,
              extra: dict[str, Any] | None = None) -> DatasetCard:
    """A card for data of env ``spec`` (statistics are filled by ``MultiAgentDataset.refresh_card``)."""
    return DatasetCard(
        env_name=spec.name, env_kwargs=dict(spec.kwargs), env_spec=spec.to_dict(), n_agents=spec.n_agents,
        agent_types=list(spec.agent_types), obs_dims=list(spec.obs_dims),
        action_kind="discrete" if spec.discrete else "continuous", behavior=dict(behavior),
        quality_tier=quality_tier, state_only=state_only, seed=seed, recipe=recipe, extra=dict(extra or {}),
    )


def rollout(env: BatchedEnv, policy: JointPolicy, episodes: int, seed: int, *, state_only: bool = False,
            progress: bool = True, behavior: dict[str, Any], quality_tier: str | None = None,
            recipe: str | None = None, extra: dict[str, Any] | None = None) -> MultiAgentDataset:
    """Collect exactly ``episodes`` complete episodes of ``policy`` in ``env`` (reset with ``seed``).

    Args:
        env: a batched env with ``B = env.num_envs`` sub-envs (auto-reset, see ``offmarl.envs.base``).
        policy: the joint behaviour policy; its own randomness is seeded by whoever built it.
        episodes: number ``N`` of episodes in the dataset (the first ``N`` started; module docstring).
        seed: passed to ``env.reset(seed=...)``; with the same policy seed the dataset is identical.
        state_only: drop the actions (DM² state-only demonstrations; ``card.state_only = True``).
        progress: show a tqdm bar over completed episodes.
        behavior, quality_tier, recipe, extra: written to the card as they are.

    Returns a dataset with ``obs [T, n, obs_dim]``, ``actions`` (unless ``state_only``), ``rewards``,
    ``terminals`` / ``truncations`` from the env's step, ``avail_actions`` when the env gives them,
    ``state`` / ``final_state`` when ``spec.state_dim > 0``, and ``final_obs [N, n, obs_dim]`` taken from
    the TimeStep's ``final_obs`` of the step that ended each episode.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    spec, B, N = env.spec, env.num_envs, int(episodes)
    has_state = spec.state_dim > 0
    max_steps = (math.ceil(N / B) + 1) * spec.episode_limit + 1  # every episode ends within episode_limit

    final_obs = np.zeros((N, spec.n_agents, spec.obs_dim), np.float32)
    final_state = np.zeros((N, spec.state_dim), np.float32) if has_state else None
    obs_l, act_l, rew_l, term_l, trunc_l, id_l, avail_l, state_l = [], [], [], [], [], [], [], []

    ts = env.reset(seed=seed)
    policy.reset(B)
    current = np.arange(B, dtype=np.int64)  # [B] id of the episode running in each sub-env
    next_id, finished, steps = B, 0, 0
    bar = tqdm(total=N, disable=not progress, desc=f"collect {spec.name}", unit="ep", leave=False)
    try:
        for before, actions, ts, _ in play(env, policy.act, lambda done: policy.reset(B, done), ts):
            obs_l.append(np.array(before.obs, dtype=np.float32))  # copies: envs may reuse their buffers
            id_l.append(current.copy())
            if before.avail_actions is not None:
                avail_l.append(np.array(before.avail_actions, dtype=bool))
            if has_state:
                state_l.append(np.array(before.state, dtype=np.float32))
            if not state_only:
                act_l.append(np.array(actions))
            steps += 1
            rew_l.append(np.array(ts.reward, dtype=np.float32))
            term_l.append(np.array(ts.terminated, dtype=bool))
            trunc_l.append(np.array(ts.truncated, dtype=bool))

            done = np.asarray(ts.terminated | ts.truncated)
            if done.any():
                ended = np.flatnonzero(done)
                kept = ended[current[ended] < N]
                if kept.size:
                    if ts.final_obs is None or (has_state and ts.final_state is None):
                        raise RuntimeError(f"env {spec.name!r}: a sub-env ended but the TimeStep has no "
                                           f"final_obs/final_state (see offmarl.envs.base)")
                    final_obs[current[kept]] = ts.final_obs[kept]
                    if has_state:
                        final_state[current[kept]] = ts.final_state[kept]
                    finished += kept.size
                    bar.update(kept.size)
                current[ended] = next_id + np.arange(ended.size)
                next_id += ended.size
            if finished >= N:
                break
            if steps >= max_steps:
                raise RuntimeError(f"env {spec.name!r}: episodes did not end within episode_limit="
                                   f"{spec.episode_limit} steps (collected {finished}/{N} after {steps} steps)")
    finally:
        bar.close()

    # ---- reorder [S, B, ...] -> flat episode layout -----------------------------------------------
    ids = np.stack(id_l)  # [S, B]
    S = ids.shape[0]
    flat_keep = np.flatnonzero(ids.ravel() < N)
    key = ids.ravel()[flat_keep] * S + flat_keep // B  # episode id, then time
    sel = flat_keep[np.argsort(key, kind="stable")]

    def flat(chunks: list[np.ndarray]) -> np.ndarray:
        arr = np.stack(chunks)
        return arr.reshape(S * B, *arr.shape[2:])[sel]

    lengths = np.bincount(ids.ravel()[flat_keep], minlength=N)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    actions_arr = None
    if not state_only:
        actions_arr = flat(act_l)
        actions_arr = actions_arr.astype(np.int64 if spec.discrete else np.float32, copy=False)
    card = make_card(spec, behavior=behavior, seed=seed, state_only=state_only, quality_tier=quality_tier,
                     recipe=recipe, extra=extra)
    ds = MultiAgentDataset(
        obs=flat(obs_l), rewards=flat(rew_l), terminals=flat(term_l), truncations=flat(trunc_l),
        episode_starts=starts, final_obs=final_obs, card=card, actions=actions_arr,
        state=flat(state_l) if has_state else None, final_state=final_state,
        avail_actions=flat(avail_l) if avail_l else None,
    )
    ds.refresh_card()
    return ds


def concatenate(datasets: Sequence[MultiAgentDataset], card: DatasetCard) -> MultiAgentDataset:
    """Episodes of ``datasets`` one after another (in order), under ``card`` (statistics refreshed).

    All parts must come from the same env and agree on which optional arrays they hold; parts with
    ``behavior_levels`` must name the same levels, and the result's card takes their names."""
    if not datasets:
        raise ValueError("concatenate needs at least one dataset")
    names = {d.card.env_name for d in datasets}
    if len(names) != 1:
        raise ValueError(f"cannot concatenate datasets of different envs: {sorted(names)}")
    optional = ("actions", "state", "final_state", "avail_actions", "behavior_levels")
    for name in optional:
        present = {getattr(d, name) is not None for d in datasets}
        if len(present) != 1:
            raise ValueError(f"cannot concatenate datasets where only some hold {name!r}")
    level_names = {tuple(d.card.behavior_level_names or ()) for d in datasets}
    if len(level_names) != 1:
        raise ValueError(f"cannot concatenate datasets whose behaviour levels are named differently: "
                         f"{sorted(list(x) for x in level_names)}")
    if datasets[0].behavior_levels is not None:
        card = dataclasses.replace(card, behavior_level_names=list(datasets[0].card.behavior_level_names))
    offsets = np.cumsum([0] + [d.n_steps for d in datasets[:-1]])
    cat = lambda name: None if getattr(datasets[0], name) is None else np.concatenate(  # noqa: E731
        [getattr(d, name) for d in datasets])
    ds = MultiAgentDataset(
        obs=cat("obs"), rewards=cat("rewards"), terminals=cat("terminals"), truncations=cat("truncations"),
        episode_starts=np.concatenate([d.episode_starts + o for d, o in zip(datasets, offsets)]).astype(np.int64),
        final_obs=cat("final_obs"), card=card, actions=cat("actions"), state=cat("state"),
        final_state=cat("final_state"), avail_actions=cat("avail_actions"), behavior_levels=cat("behavior_levels"),
    )
    ds.refresh_card()
    return ds


def mean_return(ds: MultiAgentDataset) -> float:
    """The papers' metric: per-agent average episode return, averaged over episodes."""
    return float(ds.episode_returns().mean())
