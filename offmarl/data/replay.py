"""A replay buffer of whole episodes for online value learners (pymarl's episode buffer).

Episodes arrive as rollouts of the rollout engine (:class:`~offmarl.data.trajectory.Trajectory`,
``[T, B, ...]``): the steps of each sub-env are gathered until its episode ends -- across rollouts -- and
the finished episode is stored, padded to ``max_len`` steps, in a ring of ``capacity`` episodes (the oldest
is overwritten), or, with ``keep="best"``, among the ``capacity`` episodes of highest discounted return
``Σ_t γ^t r_t`` (averaged over the stored agents; a new episode replaces the lowest-scored one when it scores
higher): self-imitation's buffer of an agent's most successful episodes (Oh et al., *Self-Imitation
Learning*, ICML 2018). An episode stores ``L + 1`` observations, states and action masks (the last: the
observation the episode ended at, ``final_obs``) and ``L`` actions (discrete ``[L, n]``, or ``[L, n,
act_dim]`` with ``act_dim``), rewards and termination flags. An
episode cut by the time limit keeps ``done = 0`` on its last step, so a learner bootstraps from its final
observation -- with the action mask the env reported there (the rollout's ``final_avail``), or all actions
available where the env reports none. The mask matters: a Q-learner's bootstrap maximizes over it, and an
action never available in such states (SMAX's attacks on enemies out of range) has a Q-value nothing ever
trained there.

:meth:`EpisodeReplay.sample` gives a batch in :class:`~offmarl.data.samplers.EpisodeSampler`'s layout
(``obs``, ``next_obs`` ``[B, L, n, d]``, ``done``, ``mask`` ``[B, L]``, ...), so the offline value learners'
update takes it unchanged. The storage grows as episodes arrive (up to ``capacity``), so an early
checkpoint holds only what was collected.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from offmarl.data.trajectory import Trajectory


class EpisodeReplay:
    """Whole episodes of ``n`` agents (module docstring)."""

    FIELDS = ("obs", "state", "avail", "actions", "rewards", "terminated")

    KEEP = ("latest", "best")

    def __init__(self, capacity: int, max_len: int, n_agents: int, obs_dim: int, state_dim: int,
                 n_actions: int, act_dim: int | None = None, keep: str = "latest", gamma: float = 1.0):
        if capacity < 1 or max_len < 1:
            raise ValueError(f"EpisodeReplay needs capacity and max_len >= 1, got {capacity}, {max_len}")
        if keep not in self.KEEP:
            raise ValueError(f"EpisodeReplay keeps {' or '.join(self.KEEP)} episodes, got {keep!r}")
        self.capacity, self.max_len, self.keep, self.gamma = int(capacity), int(max_len), keep, float(gamma)
        actions = (max_len, n_agents) if act_dim is None else (max_len, n_agents, act_dim)
        self.shapes = {"obs": (max_len + 1, n_agents, obs_dim), "state": (max_len + 1, state_dim),
                       "avail": (max_len + 1, n_agents, n_actions), "actions": actions,
                       "rewards": (max_len, n_agents), "terminated": (max_len,)}
        self.dtypes = {"obs": np.float32, "state": np.float32, "avail": bool,
                       "actions": np.int64 if act_dim is None else np.float32, "rewards": np.float32,
                       "terminated": bool}
        self.store = {k: np.zeros((0, *self.shapes[k]), self.dtypes[k]) for k in self.FIELDS}
        self.lengths = np.zeros(0, np.int64)
        self.scores = np.zeros(0, np.float64)  # keep="best": each stored episode's discounted return
        self.size, self.next_slot, self.added = 0, 0, 0
        self.pending: list[dict[str, list[np.ndarray]]] | None = None  # per sub-env: the running episode's steps

    def __len__(self) -> int:
        return self.size

    # ---- adding ----------------------------------------------------------------------------------------
    def add(self, rollout: Trajectory) -> int:
        """Gather the rollout's steps; store every episode that ended in it. Returns how many ended."""
        T, B = rollout.rewards.shape[:2]
        if self.pending is None:
            self.pending = [self._empty() for _ in range(B)]
        arrays = {"obs": rollout.obs.cpu().numpy(), "state": rollout.state.cpu().numpy(),
                  "avail": None if rollout.avail is None else rollout.avail.cpu().numpy(),
                  "actions": rollout.actions.cpu().numpy(), "rewards": rollout.rewards.cpu().numpy(),
                  "terminated": rollout.terminated.cpu().numpy()}
        done = (rollout.terminated | rollout.truncated).cpu().numpy()
        final_obs, final_state = rollout.final_obs.cpu().numpy(), rollout.final_state.cpu().numpy()
        final_avail = None if rollout.final_avail is None else rollout.final_avail.cpu().numpy()
        ended = 0
        for b in range(B):  # bookkeeping of whole episodes, once per rollout (the env steps are batched)
            steps = self.pending[b]
            for t in range(T):
                for key in self.FIELDS:
                    if arrays[key] is not None:
                        steps[key].append(arrays[key][t, b])
                if done[t, b]:
                    self._store(steps, final_obs[t, b], final_state[t, b],
                                None if final_avail is None else final_avail[t, b])
                    steps = self.pending[b] = self._empty()
                    ended += 1
        return ended

    def _empty(self) -> dict[str, list[np.ndarray]]:
        return {k: [] for k in self.FIELDS}

    def _store(self, steps: dict[str, list[np.ndarray]], final_obs: np.ndarray, final_state: np.ndarray,
               final_avail: np.ndarray | None) -> None:
        length = len(steps["rewards"])
        if length > self.max_len:
            raise ValueError(f"an episode of {length} steps does not fit the replay's max_len {self.max_len}")
        self.added += 1
        rewards = np.stack(steps["rewards"])  # [L, n]
        score = float((self.gamma ** np.arange(length) @ rewards.astype(np.float64)).mean())
        if self.keep == "best" and self.size == self.capacity:
            slot = int(np.argmin(self.scores[:self.size]))
            if score <= self.scores[slot]:
                return  # not among the best
        else:
            slot = self.next_slot
        if slot >= len(self.lengths):
            self._grow()
        for key in self.FIELDS:
            self.store[key][slot] = 0
        self.store["obs"][slot, :length + 1] = np.stack(steps["obs"] + [final_obs])
        self.store["state"][slot, :length + 1] = np.stack(steps["state"] + [final_state])
        self.store["avail"][slot] = True  # padding, and the final observation's mask where the env reports none
        if steps["avail"]:
            self.store["avail"][slot, :length] = np.stack(steps["avail"])
        if final_avail is not None:
            self.store["avail"][slot, length] = final_avail
        for key in ("actions", "rewards", "terminated"):
            self.store[key][slot, :length] = np.stack(steps[key])
        self.lengths[slot] = length
        self.scores[slot] = score
        if self.size < self.capacity or self.keep == "latest":
            self.next_slot = (slot + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def _grow(self) -> None:
        """Double the storage (up to ``capacity`` episodes)."""
        new = min(self.capacity, max(64, 2 * len(self.lengths)))
        for key in self.FIELDS:
            grown = np.zeros((new, *self.shapes[key]), self.dtypes[key])
            grown[:len(self.lengths)] = self.store[key]
            self.store[key] = grown
        lengths, scores = np.zeros(new, np.int64), np.zeros(new, np.float64)
        lengths[:len(self.lengths)], scores[:len(self.scores)] = self.lengths, self.scores
        self.lengths, self.scores = lengths, scores

    # ---- sampling ----------------------------------------------------------------------------------------
    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """``batch_size`` stored episodes drawn uniformly, cut to the longest of them, in
        :class:`~offmarl.data.samplers.EpisodeSampler`'s layout."""
        if self.size < 1:
            raise ValueError("the replay holds no episode yet")
        idx = rng.integers(0, self.size, size=batch_size)
        lengths = self.lengths[idx]
        L = int(lengths.max())
        mask = np.arange(L)[None] < lengths[:, None]  # [B, L]
        s = {key: self.store[key][idx] for key in self.FIELDS}
        out = {"obs": s["obs"][:, :L], "next_obs": s["obs"][:, 1:L + 1], "state": s["state"][:, :L],
               "next_state": s["state"][:, 1:L + 1], "avail": s["avail"][:, :L], "next_avail": s["avail"][:, 1:L + 1],
               "actions": s["actions"][:, :L], "rewards": s["rewards"][:, :L], "done": s["terminated"][:, :L],
               "mask": mask}
        return {k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in out.items()}

    # ---- resume ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        used = len(self.lengths)
        return {"store": {k: self.store[k][:used].copy() for k in self.FIELDS}, "lengths": self.lengths.copy(),
                "scores": self.scores.copy(), "size": self.size, "next_slot": self.next_slot, "added": self.added,
                "pending": [{k: [np.asarray(x).copy() for x in v] for k, v in steps.items()}
                            for steps in (self.pending or [])]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.store = {k: np.asarray(state["store"][k], dtype=self.dtypes[k]).copy() for k in self.FIELDS}
        self.lengths = np.asarray(state["lengths"], dtype=np.int64).copy()
        self.scores = np.asarray(state.get("scores", np.zeros(len(self.lengths))), dtype=np.float64).copy()
        self.size, self.next_slot, self.added = int(state["size"]), int(state["next_slot"]), int(state["added"])
        # a checkpoint stores a step's 0-d flag (``terminated``) as a 1-element array: restore every step's shape
        self.pending = [{k: [np.asarray(x).reshape(self.shapes[k][1:]) for x in v] for k, v in steps.items()}
                        for steps in state["pending"]] or None
