"""Mini-batch samplers over a :class:`~offmarl.data.dataset.MultiAgentDataset` (DESIGN.md, "Dataset").

Every sampler takes ``(dataset, batch_size, seed, ...)``, owns one ``np.random.Generator`` and returns
from ``sample()`` a dict of CPU tensors (float32 / int64 / bool). ``state_dict()`` holds only plain
Python values (the generator state, priorities as a list of floats), so it survives ``torch.save`` +
``torch.load(weights_only=True)``; ``load_state_dict`` continues the exact batch sequence.

Samplers (B batch, n agents, K window, L episode length, d obs width, S state width, A actions):

* :class:`TransitionSampler` -- single steps for Q-learning: ``obs [B, n, d]``, ``actions [B, n]`` int64
  or ``[B, n, act_dim]``, ``rewards [B, n]``, ``next_obs``, ``done [B]``, ``state``/``next_state [B, S]``,
  ``avail``/``next_avail [B, n, A]``, ``timestep [B]``.
* :class:`WindowSampler` -- left-padded K-step windows with masks and returns-to-go (sequence models).
* :class:`EpisodeSampler` -- whole episodes padded to L (recurrent value learners, lambda-returns).
* :class:`PrioritizedEpisodeSampler` -- episodes (or per-agent individual trajectories) drawn in
  proportion to priorities over a :class:`~offmarl.data.sumtree.SumTree`.
* :class:`DecomposedReplay` -- SIT's decomposed prioritized replay (DPER): one prioritized sampler of
  individual trajectories per agent type, a batch of them for every agent.

Transition semantics (all samplers that return ``next_*``): on an episode's last step ``next_obs`` /
``next_state`` are the episode's ``final_obs`` / ``final_state`` and ``next_avail`` is all True (there
is no next decision in this episode); ``done`` is 1.0 only on a true terminal step, so a truncated
(time-limit) step bootstraps from its real next observation.

Per-agent view (``agent=i``): the sampler reads only :func:`agent_slice` ``(dataset, i)`` -- agent i's
observations, actions, rewards and action masks, the agent dimension kept with size 1, and no global
state -- so a decentralized learner cannot see other agents' data (DESIGN.md, "Decentralized means
decentralized").
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch

from offmarl.data.dataset import MultiAgentDataset
from offmarl.data.returns import discounted_returns, returns_to_go
from offmarl.data.sumtree import SumTree
from offmarl.errors import DatasetError


# ---- per-agent slices --------------------------------------------------------------------------
def agent_slice(dataset: MultiAgentDataset, agent: int, trim_obs: bool = True) -> MultiAgentDataset:
    """Agent ``agent``'s part of ``dataset`` as a one-agent dataset (for decentralized learners).

    Holds agent i's ``obs``, ``actions``, ``rewards``, ``avail_actions``, ``final_obs`` and ``behavior_levels``
    (its level in each episode; the card's ``behavior_level_names`` are kept) with the agent dimension of size
    1, the same episode structure (``episode_starts``, ``terminals``, ``truncations``) and no global state.
    With ``trim_obs`` (default) observations are cut to the agent's true width ``obs_dims[i]`` (the zero
    padding of the joint layout is dropped), so the card is a valid one-agent card: ``n_agents = 1``,
    ``obs_dims = [obs_dims[i]]``, ``agent_types = [agent_types[i]]``, ``env_spec`` with one agent, that
    observation width and ``state_dim = 0``. With ``trim_obs=False``
    the padded width is kept and recorded as the agent's width. An evaluation-side policy trained on a
    trimmed slice receives ``ts.obs[:, i]`` in the padded layout and must take ``[:, :obs_dims[i]]``.

    The arrays are numpy *views* of the joint arrays (no copy, so slicing a 1 M-step dataset is free);
    writing into them writes into ``dataset``. The card's return statistics are agent i's;
    ``card.extra["agent_slice"]`` records which agent of how many the slice holds.
    """
    n = dataset.n_agents
    if not isinstance(agent, (int, np.integer)) or not 0 <= int(agent) < n:
        raise ValueError(f"agent must be an integer in [0, {n}) for this {n}-agent dataset, got {agent!r}")
    i = int(agent)
    card = dataset.card
    width = int(card.obs_dims[i]) if trim_obs else int(dataset.obs.shape[2])
    agent_type = card.agent_types[i]
    env_spec = dict(card.env_spec, n_agents=1, obs_dim=width, obs_dims=[width], agent_types=[agent_type], state_dim=0)
    new_card = dataclasses.replace(
        card, n_agents=1, obs_dims=[width], agent_types=[agent_type], env_spec=env_spec,
        extra=dict(card.extra, agent_slice={"agent": i, "n_agents": n}),
    )
    one = slice(i, i + 1)
    sliced = MultiAgentDataset(
        obs=dataset.obs[:, one, :width],
        rewards=dataset.rewards[:, one],
        terminals=dataset.terminals,
        truncations=dataset.truncations,
        episode_starts=dataset.episode_starts,
        final_obs=dataset.final_obs[:, one, :width],
        card=new_card,
        actions=None if dataset.actions is None else dataset.actions[:, one],
        avail_actions=None if dataset.avail_actions is None else dataset.avail_actions[:, one],
        behavior_levels=None if dataset.behavior_levels is None else dataset.behavior_levels[:, one],  # [E, 1]
    )
    if sliced.n_episodes:
        for key, value in sliced.compute_return_stats().items():
            setattr(new_card, key, value)
    return sliced


def softmax_priorities(scores: np.ndarray, temperature: float) -> np.ndarray:
    """``exp(scores / temperature)`` up to a constant factor, computed stably (SIT, Tian et al. 2023, Eq. 7).

    SIT reshapes episode priorities with a softmax of temperature alpha; the normalising sum does not
    change proportional sampling, so pass the result as priorities with ``alpha=1``.
    """
    if temperature <= 0:
        raise ValueError(f"softmax temperature must be > 0, got {temperature}")
    scores = np.asarray(scores, dtype=np.float64)
    return np.exp((scores - scores.max()) / temperature)


def trajectory_priorities(rewards: np.ndarray, episode_starts: np.ndarray, gamma: float,
                          high: float = 20.0) -> np.ndarray:
    """SIT's priority score of every individual trajectory (agent i in episode k), ``[E, n]`` float64
    (Tian et al., "Decomposed Prioritized Experience Replay", Eq. 6 and the priority after it; Table 11):

        ĝ_i^{t,k} = Σ_{t' ≥ t} γ^{t' − t} r̂_i^{t',k}     (Eq. 6, :func:`~offmarl.data.returns.discounted_returns`)
        p̂_i^k   = (1 / T_k) Σ_t ĝ_i^{t,k}               (the mean over the episode's T_k steps)

    then linearly rescaled over all individual trajectories of the dataset (every agent, every episode) so
    that the smallest is 0 and the largest ``high`` ("Rescaled priority range [0, 20]"); all equal gives all 0.
    Eq. 6 prints the discount as γ^{t − t'}, which grows without bound over t' ≥ t: a typo for the
    Monte-Carlo return it names. ``rewards [T, n]``: the decomposed rewards r̂ of every step and agent.
    Feed Eq. 7 with :func:`softmax_priorities` (per agent type: :class:`DecomposedReplay`).
    """
    rewards = np.asarray(rewards)
    if rewards.ndim != 2:
        raise ValueError(f"trajectory_priorities needs rewards [T, n], got shape {list(rewards.shape)}")
    returns = discounted_returns(rewards, episode_starts, gamma).astype(np.float64)  # [T, n]
    starts = np.asarray(episode_starts, dtype=np.int64)
    lengths = np.diff(np.append(starts, rewards.shape[0]))  # [E]
    means = np.add.reduceat(returns, starts, axis=0) / lengths[:, None]  # [E, n]
    low, top = means.min(), means.max()
    return np.zeros_like(means) if top == low else (means - low) * (high / (top - low))


# ---- shared machinery --------------------------------------------------------------------------
def _to_torch(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    # fancy indexing already produced fresh contiguous arrays, so from_numpy shares them without a copy
    return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in batch.items()}


class _Sampler:
    """Common state: the (possibly per-agent) dataset, per-step index arrays and the generator."""

    def __init__(self, dataset: MultiAgentDataset, batch_size: int, seed: int | None, agent: int | None = None,
                 require_actions: bool = True):
        name = type(self).__name__
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"{name}: batch_size must be a positive integer, got {batch_size!r}")
        if dataset.n_steps == 0 or dataset.n_episodes == 0:
            raise DatasetError(f"{name}: dataset of env {dataset.card.env_name!r} has no steps")
        if require_actions and dataset.actions is None:
            hint = (" or TransitionSampler(..., require_actions=False) for (obs, next_obs) pairs"
                    if isinstance(self, TransitionSampler) else "")
            raise DatasetError(
                f"{name} needs actions, but the dataset of env {dataset.card.env_name!r} is state-only "
                f"(card.state_only=True, no 'actions' field); use a dataset with actions{hint}"
            )
        if dataset.state is not None and dataset.final_state is None:
            raise DatasetError(f"{name}: dataset of env {dataset.card.env_name!r} has 'state' but no 'final_state'")
        self.agent = None if agent is None else int(agent)
        self.dataset = dataset if agent is None else agent_slice(dataset, agent)
        self.batch_size = int(batch_size)
        self.rng = np.random.default_rng(seed)
        ds = self.dataset
        starts = ds.episode_starts.astype(np.int64)
        lengths = ds.episode_lengths
        self._episode_starts = starts
        self._episode_lengths = lengths
        self._episode_of_step = np.repeat(np.arange(ds.n_episodes, dtype=np.int64), lengths)  # [T]
        self._start_of_step = np.repeat(starts, lengths)  # [T]
        self._step_in_episode = np.arange(ds.n_steps, dtype=np.int64) - self._start_of_step  # [T]
        self._is_last = np.zeros(ds.n_steps, dtype=bool)
        self._is_last[starts + lengths - 1] = True
        self._next_step = np.minimum(np.arange(1, ds.n_steps + 1, dtype=np.int64), ds.n_steps - 1)  # [T]

    # -- reproducibility ----------------------------------------------------------------------
    def reseed(self, seed: int | None) -> None:
        """Restart the generator from ``seed`` (used by ``seed_everything``)."""
        self.rng = np.random.default_rng(seed)

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python state (safe for ``torch.load(weights_only=True)``)."""
        return {"kind": type(self).__name__, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        kind = state.get("kind")
        if kind != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict got the state of a {kind!r}")
        self.rng.bit_generator.state = state["rng"]

    # -- gathering ----------------------------------------------------------------------------
    def _check_steps(self, steps: np.ndarray) -> np.ndarray:
        steps = np.asarray(steps)
        if steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer):
            raise ValueError(f"{type(self).__name__}: step indices must be a 1-D integer array, "
                             f"got {steps.dtype} {list(steps.shape)}")
        if steps.size and (steps.min() < 0 or steps.max() >= self.dataset.n_steps):
            raise ValueError(f"{type(self).__name__}: step indices must lie in [0, {self.dataset.n_steps}), "
                             f"got {steps.min()}..{steps.max()}")
        return steps.astype(np.int64, copy=False)

    def _gather_steps(self, idx: np.ndarray, pad: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Transition fields for step indices ``idx`` (any shape ``[*I]``); ``pad [*I]`` marks padding.

        Padded positions must hold a valid step index; their values are overwritten with zeros
        (``avail``/``next_avail`` with True so a masked softmax never sees a row of -inf).
        """
        ds = self.dataset
        last = self._is_last[idx]  # [*I]
        final_episode = self._episode_of_step[idx[last]]  # [m]
        nxt = self._next_step[idx]

        out: dict[str, np.ndarray] = {}
        out["obs"] = ds.obs[idx].astype(np.float32, copy=False)
        next_obs = ds.obs[nxt].astype(np.float32, copy=False)
        next_obs[last] = ds.final_obs[final_episode]
        out["next_obs"] = next_obs
        if ds.actions is not None:
            dtype = np.int64 if ds.actions.ndim == 2 else np.float32
            out["actions"] = ds.actions[idx].astype(dtype, copy=False)
        out["rewards"] = ds.rewards[idx].astype(np.float32, copy=False)
        out["done"] = ds.terminals[idx].astype(np.float32)
        if ds.state is not None:
            out["state"] = ds.state[idx].astype(np.float32, copy=False)
            next_state = ds.state[nxt].astype(np.float32, copy=False)
            next_state[last] = ds.final_state[final_episode]
            out["next_state"] = next_state
        if ds.avail_actions is not None:
            out["avail"] = ds.avail_actions[idx].astype(bool, copy=False)
            next_avail = ds.avail_actions[nxt].astype(bool, copy=False)
            next_avail[last] = True
            out["next_avail"] = next_avail
        out["timestep"] = self._step_in_episode[idx]
        if pad is not None and pad.any():
            for key, value in out.items():
                value[pad] = key in ("avail", "next_avail")
        return out


# ---- transitions -------------------------------------------------------------------------------
class TransitionSampler(_Sampler):
    """Uniform single steps for Q-learning; keys in the module docstring.

    ``require_actions=False`` allows a state-only dataset (e.g. DM²'s GAIL discriminator on
    ``(o, o')`` pairs); the batch then has no ``actions``.
    """

    def __init__(self, dataset: MultiAgentDataset, batch_size: int, seed: int | None, agent: int | None = None,
                 require_actions: bool = True):
        super().__init__(dataset, batch_size, seed, agent, require_actions)

    def sample(self) -> dict[str, torch.Tensor]:
        return self.batch_at(self.rng.integers(0, self.dataset.n_steps, size=self.batch_size))

    def batch_at(self, steps: np.ndarray) -> dict[str, torch.Tensor]:
        """The batch of the given flat step indices ``[B]`` (what :meth:`sample` draws uniformly)."""
        return _to_torch(self._gather_steps(self._check_steps(steps)))


# ---- K-step windows ----------------------------------------------------------------------------
class WindowSampler(_Sampler):
    """K-step windows for sequence models (Decision Transformer).

    Sampling: draw a step ``t`` uniformly over all steps of the dataset and take the (up to) K steps of
    t's episode that *end* at ``t``; when fewer than K steps precede ``t`` in its episode, the window is
    LEFT-padded to K. Windows therefore never cross an episode boundary, every step is the last real
    position of a window with equal probability, and padding appears exactly where a Decision
    Transformer's evaluation context is padded (the first K - 1 steps of an episode). Departure from
    kzl's decision-transformer (``gym/experiment.py``, ``get_batch``), which draws a trajectory with
    probability proportional to its length and a start ``si`` uniformly within it, takes the steps
    ``si .. si + K - 1`` and left-pads when the episode ends first: there the padded windows end at an
    episode's *last* step, a context never seen at evaluation, and the first K - 1 steps never appear
    with left padding as they do at evaluation.

    Keys (``n`` = 1 in the per-agent view):
        obs [B, K, n, d] f32, actions [B, K, n] i64 | [B, K, n, act_dim] f32, rewards [B, K, n] f32,
        rtg [B, K, n] f32       per-agent return-to-go ``reward_scale_i * sum_{t' >= t} r_{t'}^i``
                                (:func:`~offmarl.data.returns.returns_to_go`, discount 1),
        team_rtg [B, K] f32     team return-to-go = sum over agents of the per-agent rtg (in the per-agent
                                view it is agent i's own rtg: nothing of the others leaks in),
        episode_rtg [B, K, n] f32  the (scaled) return of the step's episode, its rtg at the episode's first
                                step; ``rtg - episode_rtg`` is minus the return collected before the step (what
                                relabelling a window to another target return needs),
        timesteps [B, K] i64    index of the step within its episode (0 at pads),
        mask [B, K] bool        True on real steps,
        avail [B, K, n, A] bool when the dataset has action masks, state [B, K, S] f32 when it has state
                                (joint view only).
    Pads hold zeros (actions 0, rtg 0) and ``avail`` all True, so a masked cross-entropy over pads never
    meets a row of -inf. ``rewards`` are unscaled; ``reward_scale`` (one number, or one per agent ``[n]``)
    applies to ``rtg`` and ``team_rtg`` only, and an evaluation policy must use the same scale in its
    :class:`~offmarl.data.returns.ReturnToGoTracker`.
    """

    def __init__(self, dataset: MultiAgentDataset, batch_size: int, seed: int | None, K: int = 20,
                 reward_scale: float | np.ndarray = 1.0, agent: int | None = None):
        if not isinstance(K, (int, np.integer)) or K < 1:
            raise ValueError(f"WindowSampler: K must be a positive integer, got {K!r}")
        super().__init__(dataset, batch_size, seed, agent, require_actions=True)
        self.K = int(K)
        self.reward_scale = np.asarray(reward_scale, dtype=np.float64)  # [] or [n]
        ds = self.dataset
        self._rtg = returns_to_go(ds.rewards, ds.episode_starts, self.reward_scale)  # [T, n]
        scaled = (ds.rewards.astype(np.float64) * self.reward_scale).sum(axis=1)  # [T]
        self._team_rtg = returns_to_go(scaled, ds.episode_starts)  # [T]
        self._offsets = np.arange(self.K, dtype=np.int64) - (self.K - 1)  # [K] = -(K-1) .. 0

    def sample(self) -> dict[str, torch.Tensor]:
        return self.batch_at(self.rng.integers(0, self.dataset.n_steps, size=self.batch_size))

    def batch_at(self, last_steps: np.ndarray) -> dict[str, torch.Tensor]:
        """The windows ending at the given flat step indices ``[B]`` (what :meth:`sample` draws uniformly)."""
        ds = self.dataset
        t = self._check_steps(last_steps)  # [B] last step of each window
        start = self._start_of_step[t][:, None]  # [B, 1]
        idx = t[:, None] + self._offsets  # [B, K]
        mask = idx >= start  # [B, K]
        idx = np.maximum(idx, start)  # pads point at the episode's first step, then get overwritten
        pad = ~mask

        dtype = np.int64 if ds.actions.ndim == 2 else np.float32
        out: dict[str, np.ndarray] = {
            "obs": ds.obs[idx].astype(np.float32, copy=False),
            "actions": ds.actions[idx].astype(dtype, copy=False),
            "rewards": ds.rewards[idx].astype(np.float32, copy=False),
            "rtg": self._rtg[idx],
            "team_rtg": self._team_rtg[idx],
            "episode_rtg": self._rtg[self._start_of_step[idx]],
            "timesteps": self._step_in_episode[idx],
        }
        if ds.avail_actions is not None:
            out["avail"] = ds.avail_actions[idx].astype(bool, copy=False)
        if ds.state is not None:
            out["state"] = ds.state[idx].astype(np.float32, copy=False)
        if pad.any():
            for key, value in out.items():
                value[pad] = key == "avail"
        out["mask"] = mask
        return _to_torch(out)


# ---- whole episodes ----------------------------------------------------------------------------
class DrawnEpisodes(NamedTuple):
    """The random part of an episode batch, ``[B]`` each: episode ids, extra batch fields, the first kept
    step (a dataset index) and the number of kept steps."""

    episodes: np.ndarray
    extra: dict[str, np.ndarray]
    first: np.ndarray
    kept: np.ndarray


class EpisodeSampler(_Sampler):
    """Whole episodes padded to ``max_len`` for recurrent value learners (GRU agents, lambda-returns).

    Episodes are drawn uniformly. Keys are those of :class:`TransitionSampler` with a time axis
    (``obs [B, L, n, d]``, ``done [B, L]``, ``timestep [B, L]``, ``next_*`` per step, ...) plus
    ``mask [B, L]`` (True on real steps; padding is on the right, zeros and all-True ``avail``) and
    ``episode_index [B]``. ``max_len`` defaults to the longest episode. An episode longer than
    ``max_len`` is cropped to a window of ``max_len`` consecutive steps starting at a uniformly drawn
    offset; ``timestep`` then starts at that offset and the last kept step has ``done = 0`` and its real
    next observation, so a learner bootstraps there instead of treating the crop as an episode end.

    ``pad``: ``"max_len"`` (every batch has L = ``max_len`` steps) or ``"batch"`` (L = the longest kept
    episode of the batch: a learner whose losses mask the padding gets the same result for less compute --
    on SMAX 2s3z a batch of 32 episodes is ~81 steps long against the dataset's 100).
    """

    PADS = ("max_len", "batch")

    def __init__(self, dataset: MultiAgentDataset, batch_size: int, seed: int | None, max_len: int | None = None,
                 agent: int | None = None, require_actions: bool = True, pad: str = "max_len"):
        super().__init__(dataset, batch_size, seed, agent, require_actions)
        longest = int(self._episode_lengths.max())
        if max_len is not None and (not isinstance(max_len, (int, np.integer)) or max_len < 1):
            raise ValueError(f"{type(self).__name__}: max_len must be a positive integer or None, got {max_len!r}")
        if pad not in self.PADS:
            raise ValueError(f"{type(self).__name__}: pad must be one of {', '.join(self.PADS)}, got {pad!r}")
        self.max_len = longest if max_len is None else int(max_len)
        self.pad = pad
        self._positions = np.arange(self.max_len, dtype=np.int64)  # [L]

    def _draw_episodes(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Episode ids ``[B]`` and extra batch fields."""
        return self.rng.integers(0, self.dataset.n_episodes, size=self.batch_size), {}

    def sample(self) -> dict[str, torch.Tensor]:
        drawn = self.draw()
        return self.build(drawn, self.length(drawn))

    def draw(self) -> DrawnEpisodes:
        """The random part of a batch (no gathering)."""
        episodes, extra = self._draw_episodes()  # [B]
        lengths = self._episode_lengths[episodes]  # [B]
        crop = self.rng.integers(0, np.maximum(lengths - self.max_len, 0) + 1)  # [B] crop offset (0 if it fits)
        first = self._episode_starts[episodes] + crop  # [B]
        kept = np.minimum(lengths - crop, self.max_len)  # [B]
        return DrawnEpisodes(episodes, extra, first, kept)

    def length(self, *drawn: DrawnEpisodes) -> int:
        """L of a batch holding the ``drawn`` episodes (``pad``, class docstring)."""
        return self.max_len if self.pad == "max_len" else max(int(d.kept.max()) for d in drawn)

    def build(self, drawn: DrawnEpisodes, length: int) -> dict[str, torch.Tensor]:
        """The batch of ``drawn`` episodes padded to ``length`` steps (no randomness)."""
        episodes, extra, first, kept = drawn
        positions = self._positions[:length]  # [L]
        mask = positions < kept[:, None]  # [B, L]
        idx = first[:, None] + np.minimum(positions, kept[:, None] - 1)  # [B, L] pads repeat the last step
        out = self._gather_steps(idx, pad=~mask)
        out["mask"] = mask
        out["episode_index"] = episodes.astype(np.int64, copy=False)
        out.update(extra)
        return _to_torch(out)


class PrioritizedEpisodeSampler(EpisodeSampler):
    """Episodes drawn in proportion to priorities over a sum tree (SIT's DPER).

    Items: the dataset's episodes, or -- with ``agents=[j, ...]`` -- the individual trajectories
    ``(j, episode)`` of those agents (SIT stores the individual trajectories of all agents of one type in
    one replay; Tian et al., "Decomposed Prioritized Experience Replay"). Item ``k`` is episode
    ``k % E`` of agent ``agents[k // E]``. An item is drawn with probability

        P(k) = p_k^alpha / sum_j p_j^alpha        (Schaul et al. 2016, Eq. 1; p_k = 0 is never drawn)

    with priorities ``p`` initialised to 1 (uniform) or given. SIT's softmax reshaping (Eq. 7) is
    ``priorities = softmax_priorities(p_hat, temperature)`` with ``alpha = 1``.

    The batch is that of :class:`EpisodeSampler` (the joint episode, so a critic can read the other
    agents' observations) plus ``item_index [B]`` (pass it back to :meth:`update_priorities`), ``agent
    [B]`` (with ``agents``) and importance weights ``weights [B] = (N * P(k))^-beta / max_batch``
    (Schaul et al., Sec. 3.4, normalised by the batch maximum); the default ``beta = 0`` gives all ones,
    i.e. no correction -- SIT samples good trajectories on purpose and does not re-weight them.
    """

    def __init__(self, dataset: MultiAgentDataset, batch_size: int, seed: int | None, alpha: float = 1.0,
                 max_len: int | None = None, priorities: np.ndarray | None = None, beta: float = 0.0,
                 agents: Sequence[int] | None = None, agent: int | None = None, pad: str = "max_len"):
        if agents is not None and agent is not None:
            raise ValueError("PrioritizedEpisodeSampler: give either agent (per-agent view) or agents (items), "
                             "not both")
        super().__init__(dataset, batch_size, seed, max_len, agent, pad=pad)
        if alpha < 0 or beta < 0:
            raise ValueError(f"PrioritizedEpisodeSampler: alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        n_episodes = self.dataset.n_episodes
        if agents is None:
            self.agents = None
        else:
            self.agents = np.asarray(agents, dtype=np.int64)
            n = self.dataset.n_agents
            if self.agents.ndim != 1 or self.agents.size == 0 or self.agents.min() < 0 or self.agents.max() >= n:
                raise ValueError(f"PrioritizedEpisodeSampler: agents must be a non-empty list of ids in [0, {n}), "
                                 f"got {agents!r}")
        self.n_items = n_episodes * (1 if self.agents is None else self.agents.size)
        self._tree = SumTree(self.n_items)
        if priorities is not None and np.shape(priorities) != (self.n_items,):
            raise ValueError(f"PrioritizedEpisodeSampler: priorities must have shape [{self.n_items}] (one per item), "
                             f"got {list(np.shape(priorities))}")
        self._priorities = np.zeros(self.n_items, dtype=np.float64)
        self.update_priorities(np.arange(self.n_items), np.ones(self.n_items) if priorities is None else priorities)

    @property
    def priorities(self) -> np.ndarray:
        """Current (un-exponentiated) priorities ``[N items]`` (a copy)."""
        return self._priorities.copy()

    def update_priorities(self, episode_index: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priorities of items ``episode_index`` (the batch's ``item_index``; episode ids unless
        ``agents`` was given) to ``priorities`` (>= 0, finite). O(log N) per item."""
        index = np.asarray(episode_index, dtype=np.int64).ravel()
        values = np.broadcast_to(np.asarray(priorities, dtype=np.float64), index.shape).copy()
        if index.size and (index.min() < 0 or index.max() >= self.n_items):
            raise ValueError(f"PrioritizedEpisodeSampler: item index out of range [0, {self.n_items}): "
                             f"{index.min()}..{index.max()}")
        if not np.all(np.isfinite(values)) or (values.size and values.min() < 0):
            raise ValueError("PrioritizedEpisodeSampler: priorities must be finite and >= 0")
        previous = self._priorities[index]
        self._priorities[index] = values
        self._tree.update(index, self._leaf_values(index))
        if self._tree.total <= 0:  # roll back so the sampler stays usable
            self._priorities[index] = previous
            self._tree.update(index, self._leaf_values(index))
            raise ValueError("PrioritizedEpisodeSampler: all priorities would be zero; nothing could be sampled")

    def _draw_episodes(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        total = self._tree.total
        items = self._tree.sample(self.rng.random(self.batch_size) * total)  # [B]
        n_episodes = self.dataset.n_episodes
        extra = {"item_index": items}
        if self.beta == 0.0:
            extra["weights"] = np.ones(self.batch_size, dtype=np.float32)
        else:
            prob = self._leaf_values(items) / total  # [B] P(k) of each drawn item
            w = (self.n_items * prob) ** (-self.beta)
            extra["weights"] = (w / w.max()).astype(np.float32)
        if self.agents is not None:
            extra["agent"] = self.agents[items // n_episodes]
        return items % n_episodes, extra

    def _leaf_values(self, items: np.ndarray) -> np.ndarray:
        priorities = self._priorities[items]
        return np.where(priorities > 0, priorities**self.alpha, 0.0)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["priorities"] = self._priorities.tolist()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        priorities = np.asarray(state["priorities"], dtype=np.float64)
        if priorities.shape != (self.n_items,):
            raise ValueError(f"PrioritizedEpisodeSampler.load_state_dict: {priorities.size} priorities "
                             f"for {self.n_items} items")
        super().load_state_dict(state)
        self.update_priorities(np.arange(self.n_items), priorities)


class DecomposedReplay:
    """SIT's decomposed prioritized experience replay (Tian et al., "Decomposed Prioritized Experience
    Replay" and "Conservative Policy Learning with GAT-Based Critic"; Algorithm 1, lines 7-18).

    Every joint episode k is split into the individual trajectories (j, k), one per agent j, and the
    trajectories of the agents of one type (``card.agent_types``) go into that type's replay: one
    :class:`PrioritizedEpisodeSampler` over the items (j, k) of the type's agents, i.e. one sum tree per type.
    A batch holds, for every agent i, ``batch_size`` items drawn from the replay of i's type in proportion
    to their priorities (:meth:`set_priorities`; 1 = uniform until set): the item's agent j may be any agent
    of the type, i itself included -- agents of one type share their trajectories, and a good trajectory of
    agent j trains agent i.

    ``sample()`` returns the fields of :class:`EpisodeSampler` for each agent's items, stacked on a leading
    agent axis: ``obs [n, B, L, n, d]`` (item (j, k) of row i: episode k whole, every agent's observation,
    so a critic can read o_{-j}), ``actions [n, B, L, n]`` …, ``mask [n, B, L]``, plus ``source_agent [n, B]``
    (j), ``episode_index [n, B]``, ``item_index [n, B]`` (in the type's replay), ``weights [n, B]`` (ones) and,
    per name given to :meth:`set_step_values`, ``<name> [n, B, L]``: that per-step, per-agent value at the
    item's agent j (zeros on padding). The replays draw in agent order with their own generators.

    ``share=False`` gives every agent a replay of its own trajectories only (one sum tree per agent; not in
    the paper: the switch that tells what sharing within a type does).
    """

    def __init__(self, dataset: MultiAgentDataset, batch_size: int, seed: int | None, max_len: int | None = None,
                 pad: str = "max_len", share: bool = True):
        labels = list(dataset.card.agent_types) if share else [str(i) for i in range(dataset.n_agents)]
        groups = list(dict.fromkeys(labels))  # in order of first appearance
        self.type_agents = [[i for i, t in enumerate(labels) if t == name] for name in groups]
        self.type_names = groups
        self.agent_replay = [groups.index(t) for t in labels]  # [n] replay of each agent
        self.replays = [PrioritizedEpisodeSampler(dataset, batch_size, _child_seed(seed, k), max_len=max_len,
                                                  agents=agents, pad=pad)
                        for k, agents in enumerate(self.type_agents)]
        self.dataset = dataset
        self._step_values: dict[str, np.ndarray] = {}

    @property
    def n_episodes(self) -> int:
        return self.dataset.n_episodes

    def set_priorities(self, priorities: np.ndarray) -> None:
        """Priorities ``[E, n]`` of the individual trajectories (episode, agent), each type's columns into its
        sum tree (e.g. Eq. 7's ``softmax_priorities(p̂, α)`` per type)."""
        priorities = np.asarray(priorities, dtype=np.float64)
        if priorities.shape != (self.n_episodes, self.dataset.n_agents):
            raise ValueError(f"DecomposedReplay: priorities must be [{self.n_episodes}, {self.dataset.n_agents}] "
                             f"(episodes, agents), got {list(priorities.shape)}")
        for replay, agents in zip(self.replays, self.type_agents):
            # item k of a type's replay is (agent agents[k // E], episode k % E)
            replay.update_priorities(np.arange(replay.n_items), priorities[:, agents].T.ravel())

    def set_step_values(self, **values: np.ndarray) -> None:
        """Per-step, per-agent arrays ``[T, n]`` to hand out at each item's agent (SIT: r̂ and û)."""
        for name, value in values.items():
            if np.shape(value) != (self.dataset.n_steps, self.dataset.n_agents):
                raise ValueError(f"DecomposedReplay: {name} must be [{self.dataset.n_steps}, "
                                 f"{self.dataset.n_agents}] (steps, agents), got {list(np.shape(value))}")
            self._step_values[name] = np.asarray(value, dtype=np.float32)

    def sample(self) -> dict[str, torch.Tensor]:
        agents = range(self.dataset.n_agents)
        drawn = [self.replays[self.agent_replay[i]].draw() for i in agents]  # in agent order (class docstring)
        length = self.replays[0].length(*drawn)  # one L for all agents' rows
        batches = [self._build_for(i, d, length) for i, d in zip(agents, drawn)]
        return {key: torch.stack([b[key] for b in batches]) for key in batches[0]}

    def _build_for(self, agent: int, drawn: DrawnEpisodes, length: int) -> dict[str, torch.Tensor]:
        replay = self.replays[self.agent_replay[agent]]
        batch = replay.build(drawn, length)
        batch["source_agent"] = batch.pop("agent")
        if self._step_values:
            episodes, source = batch["episode_index"].numpy(), batch["source_agent"].numpy()  # [B]
            steps = replay._episode_starts[episodes][:, None] + batch["timestep"].numpy()  # [B, L] (pads: masked)
            mask = batch["mask"].numpy()
            for name, value in self._step_values.items():
                batch[name] = torch.from_numpy(np.where(mask, value[steps, source[:, None]], 0.0).astype(np.float32))
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, "replays": [replay.state_dict() for replay in self.replays]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != type(self).__name__ or len(state["replays"]) != len(self.replays):
            raise ValueError(f"DecomposedReplay.load_state_dict got the state of a {state.get('kind')!r} "
                             f"with {len(state.get('replays', []))} replays for {len(self.replays)} agent types")
        for replay, saved in zip(self.replays, state["replays"]):
            replay.load_state_dict(saved)


def _child_seed(seed: int | None, k: int) -> int | None:
    """An independent seed for the k-th of several generators made from ``seed``."""
    return None if seed is None else int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
