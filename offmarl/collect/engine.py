"""The rollout engine: ``B`` sub-envs stepped together by a policy -- the one loop that dataset collection
(:func:`offmarl.collect.rollout.rollout`), evaluation (:func:`offmarl.train.evaluate.evaluate_policy`) and
online training (:class:`RolloutEngine`) run.

:func:`play` is that loop: per step one batched action call for all agents of all sub-envs (no Python loop
over envs or agents), one ``env.step``, and, where episodes ended (the env auto-resets them), the policy told
so before its next action. Collection and evaluation drive it with a
:class:`~offmarl.policies.base.JointPolicy`; online training with the learner's stochastic policy, below.

Each :meth:`RolloutEngine.collect` plays ``T`` steps in every sub-env and returns a time-major
:class:`~offmarl.data.trajectory.Trajectory` (``[T, B, n, ...]`` tensors). Per step the engine makes one
batched call of the learner (:class:`~offmarl.data.trajectory.TrainingActor`) for all agents of all
sub-envs -- no Python loop over envs or agents -- and one ``env.step``. What it keeps track of:

* **Recurrent state.** The learner's hidden state ``[B, ...]`` is carried across steps and across
  ``collect`` calls (after each step through the learner's optional ``carry_hidden(hidden, rewards)``, e.g. a
  return-conditioned actor's return-to-go); where a sub-env's episode ended it is zeroed before the next
  episode's first step,
  and ``starts [T, B]`` marks those first steps (recurrent learners replay chunks from the stored
  ``hidden [T, B, ...]``).
* **Masks.** ``avail [T, B, n, A]`` (unavailable actions, from the env) and ``active [T, B, n]`` (the agent
  is alive: ``info["alive"]`` where the env reports it, else every agent).
* **Truncation.** An episode that ends because of the time limit (``truncated`` and not ``terminated``)
  did not end in the MDP: its last transition bootstraps from the value of the observation it reached,
  ``bootstrap [T, B, n] = V(final_obs)`` computed with the hidden state the last step left, whereas a
  termination bootstraps from 0. ``last_values [B, n]`` are the values of the observations the rollout
  stopped at, ``last_obs`` (the bootstrap of the last step of unfinished episodes). ``final_obs`` /
  ``final_state`` / ``final_avail`` keep the observation, state and action mask each ended episode reached (a
  replay of whole episodes needs them: a Q-learner bootstrapping a time limit maximizes over the actions
  available *there*).
* **Episode statistics** of the episodes that ended during the rollout: their per-agent average returns
  and, where the env reports ``info["win"]``, whether they were won.

Continuous actions are sampled unbounded (the learner's log-probability is the sample's) and clipped to
the action Box before the env sees them. Randomness: the actions are drawn from a ``torch.Generator``
seeded from the engine's seed, which :meth:`state_dict` keeps with the env's state (when the env can
restore it: ``env.restorable``, ``env.get_state``), the current observations and the hidden state, so a
run resumed at a rollout boundary continues bit for bit. An env that cannot restore its simulator (an external one) is
reset on resume instead: its episodes restart, the rest continues exactly.
"""

from __future__ import annotations

import time
from dataclasses import fields
from typing import Any, Callable, Iterator

import numpy as np
import torch

from offmarl.data.trajectory import TrainingActor, Trajectory
from offmarl.envs.base import BatchedEnv, TimeStep


def _tensor(x: np.ndarray | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if x is None else torch.as_tensor(np.array(x), dtype=dtype)


def play(env: BatchedEnv, act: Callable[[TimeStep, bool], np.ndarray], episodes_ended: Callable[[np.ndarray], None],
         ts: TimeStep, first: bool = True) -> Iterator[tuple[TimeStep, np.ndarray, TimeStep, float]]:
    """Step ``env`` from ``ts`` for as long as the caller iterates: ``actions = act(ts, first)`` (``first``
    on the first call after a full reset), ``nxt = env.step(actions)``, yield ``(ts, actions, nxt, seconds
    spent in env.step)``; then, before the next action, ``episodes_ended(done [B])`` where sub-envs ended."""
    while True:
        actions = act(ts, first)
        first = False
        started = time.perf_counter()
        nxt = env.step(actions)
        yield ts, actions, nxt, time.perf_counter() - started
        done = np.asarray(nxt.terminated | nxt.truncated)
        if done.any():
            episodes_ended(done)
        ts = nxt


class RolloutEngine:
    """Steps ``env`` with ``actor`` (module docstring); ``seed`` resets the env and seeds the action draws."""

    def __init__(self, env: BatchedEnv, actor: TrainingActor, seed: int, device: torch.device | str = "cpu"):
        self.env, self.actor, self.seed = env, actor, int(seed)
        self.device = torch.device(device)
        spec = env.spec
        self.discrete = spec.discrete
        if not self.discrete:
            self.low = np.asarray(spec.action_space.low, dtype=np.float32)
            self.high = np.asarray(spec.action_space.high, dtype=np.float32)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self.env_seconds = 0.0  # wall time inside env.step, so a benchmark can split collection time
        self._start(env.reset(seed=self.seed))

    def _start(self, ts: TimeStep) -> None:
        """Begin fresh episodes in every sub-env from ``ts``."""
        B = self.env.num_envs
        self.ts = ts
        self.hidden = self.actor.initial_hidden(B)
        self.starts = np.ones(B, dtype=bool)
        self.running_return = np.zeros(B, dtype=np.float64)
        self._play()

    def _play(self) -> None:
        """(Re)start :func:`play` from the current TimeStep; the hidden states are reset by :meth:`collect`."""
        self._steps = play(self.env, self._act, lambda done: None, self.ts, first=False)

    def _act(self, ts: TimeStep, first: bool) -> np.ndarray:
        """The learner's sampled actions, clipped to the action Box for the env; what :meth:`collect` records
        of the step is kept in ``self._current``."""
        obs, state, avail = self._inputs(ts.obs, ts.state, ts.avail_actions)
        out = self.actor.act_train(obs, state, avail, self.hidden, self.generator)
        self._current = (obs, state, avail, out)
        action = out.action.cpu().numpy()
        return action if self.discrete else np.clip(action, self.low, self.high)

    def _to(self, x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x.to(self.device)

    def _inputs(self, obs: np.ndarray, state: np.ndarray, avail: np.ndarray | None):
        return (self._to(_tensor(obs, torch.float32)), self._to(_tensor(state, torch.float32)),
                self._to(_tensor(avail, torch.bool)))

    @torch.no_grad()
    def collect(self, steps: int) -> Trajectory:
        """Play ``steps`` steps in every sub-env (module docstring)."""
        B, n = self.env.num_envs, self.env.spec.n_agents
        record: dict[str, list] = {f.name: [] for f in fields(Trajectory)}
        returns, wins = [], []
        carry = getattr(self.actor, "carry_hidden", None)  # optional: the hidden state reads the step's rewards
        for _ in range(steps):
            hidden = self.hidden
            ts, _, nxt, seconds = next(self._steps)
            obs, state, avail, out = self._current
            self.env_seconds += seconds
            alive = ts.info.get("alive")
            record["obs"].append(obs), record["state"].append(state), record["avail"].append(avail)
            record["starts"].append(torch.as_tensor(self.starts.copy()))
            record["hidden"].append(hidden)
            record["active"].append(torch.ones(B, n, dtype=torch.bool) if alive is None
                                    else torch.as_tensor(np.array(alive, dtype=bool)))
            terminated, truncated = np.asarray(nxt.terminated, bool), np.asarray(nxt.truncated, bool)
            bootstrap = torch.zeros(B, n)
            final_obs, final_state = torch.zeros(obs.shape), torch.zeros(state.shape)
            final_avail = None if avail is None else torch.ones(avail.shape, dtype=torch.bool)
            if (terminated | truncated).any():
                ended = torch.as_tensor(terminated | truncated)
                final_obs[ended] = _tensor(nxt.final_obs, torch.float32)[ended]
                final_state[ended] = _tensor(nxt.final_state, torch.float32)[ended]
                if final_avail is not None and nxt.final_avail is not None:
                    final_avail[ended] = _tensor(nxt.final_avail, torch.bool)[ended]
            cut = truncated & ~terminated
            if cut.any():
                values = self.actor.bootstrap_value(*self._inputs(nxt.final_obs, nxt.final_state, None), out.hidden)
                bootstrap[torch.as_tensor(cut)] = values.cpu()[torch.as_tensor(cut)]
            for key, value in (("actions", out.action.cpu()), ("log_probs", out.log_prob.cpu()),
                               ("values", out.value.cpu()), ("bootstrap", bootstrap), ("final_obs", final_obs),
                               ("final_state", final_state), ("final_avail", final_avail),
                               ("rewards", torch.as_tensor(np.array(nxt.reward, dtype=np.float32))),
                               ("terminated", torch.as_tensor(terminated)), ("truncated", torch.as_tensor(truncated))):
                record[key].append(value)
            done = terminated | truncated
            self.running_return += np.asarray(nxt.reward, dtype=np.float64).mean(axis=1)
            if done.any():
                returns.append(self.running_return[done])
                if "win" in nxt.info:
                    wins.append(np.asarray(nxt.info["win"], dtype=bool)[done])
                self.running_return[done] = 0.0
            carried = out.hidden if carry is None else carry(out.hidden, record["rewards"][-1].to(self.device))
            self.hidden = self._reset_hidden(carried, done)
            self.starts = done
            self.ts = nxt
        obs, state, avail = self._inputs(self.ts.obs, self.ts.state, self.ts.avail_actions)
        last_values = self.actor.bootstrap_value(obs, state, avail, self.hidden).cpu()
        stack = {k: (torch.stack(v) if v and v[0] is not None else None) for k, v in record.items()
                 if k not in ("last_values", "last_obs", "episode_returns", "episode_wins")}
        return Trajectory(**stack, last_values=last_values, last_obs=obs.cpu(),
                          episode_returns=np.concatenate(returns) if returns else np.zeros(0),
                          episode_wins=np.concatenate(wins) if wins else None)

    def _reset_hidden(self, hidden: torch.Tensor | None, done: np.ndarray) -> torch.Tensor | None:
        """Zero the hidden state of sub-envs whose episode ended (their next step starts a new one)."""
        if hidden is None or not done.any():
            return hidden
        keep = torch.as_tensor(~done, device=hidden.device).reshape(-1, *([1] * (hidden.dim() - 1)))
        return hidden * keep

    # ---- resume ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        env_state = self.env.get_state() if self.env.restorable else None
        ts = self.ts
        return {"env": env_state, "generator": self.generator.get_state(), "hidden": self.hidden,
                "starts": self.starts.copy(), "running_return": self.running_return.copy(),
                "timestep": {"obs": np.array(ts.obs), "state": np.array(ts.state),
                             "avail_actions": None if ts.avail_actions is None else np.array(ts.avail_actions),
                             "info": {k: np.array(v) for k, v in ts.info.items()}}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        if state["env"] is None:  # the env cannot restore its simulator: its episodes restart
            self._start(self.env.reset(seed=self.seed + 1))
            return
        self.env.set_state(state["env"])
        saved, B = state["timestep"], self.env.num_envs
        self.ts = TimeStep(obs=np.asarray(saved["obs"]), state=np.asarray(saved["state"]),
                           reward=np.zeros((B, self.env.spec.n_agents), np.float32),
                           terminated=np.zeros(B, bool), truncated=np.zeros(B, bool),
                           avail_actions=None if saved["avail_actions"] is None else np.asarray(saved["avail_actions"]),
                           info={k: np.asarray(v) for k, v in saved["info"].items()})
        self.hidden = state["hidden"]
        self.starts = np.asarray(state["starts"], dtype=bool).copy()
        self.running_return = np.asarray(state["running_return"], dtype=np.float64).copy()
        self._play()
