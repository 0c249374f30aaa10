"""Decision-Transformer policies: a rolling K-step context and a return-to-go per sub-env.

Each policy keeps, for each of the ``B`` sub-envs, the last K steps of (return-to-go, observation,
action, timestep) of the agents it controls, LEFT-padded after a reset exactly like the training
windows (``offmarl.data.samplers.WindowSampler``), and a
:class:`~offmarl.data.returns.ReturnToGoTracker` started at the target return (``R_{t+1} = R_t - r_t``).
A step: update the return-to-go with the last reward, append (R̂_t, o_t, a_t = 0) to the context, run
the network once for all B sub-envs, take the greedy action at the last position and write it into the
context (the placeholder a_t cannot influence the prediction: the action is read from the o_t token).

* :class:`DTAgentPolicy` -- agent i alone (IDT, students, MADT): it receives only agent i's observation,
  action mask and reward, and runs only agent i's network (``member=i`` of a per-agent DT).
* :class:`DTJointPolicy` -- the centralized teacher: all agents' observations at once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from offmarl.data.returns import ReturnToGoTracker
from offmarl.envs.base import TimeStep
from offmarl.nets.action_head import ActionHead
from offmarl.nets.decision_transformer import DecisionTransformer
from offmarl.policies.base import AgentPolicy, DecentralizedPolicy, JointPolicy


class DTContext:
    """Context buffers of ``m`` agents over ``B`` sub-envs and one batched forward per step.

    Buffers: rtg [B, K, m], obs [B, K, m, d], actions [B, K, m] | [B, K, m, act_dim], timesteps [B, K],
    mask [B, K] (False = pad), t [B] (steps taken in the current episode).
    """

    def __init__(self, model: DecisionTransformer, head: ActionHead, agent_ids: Sequence[int], target: np.ndarray,
                 reward_scale: np.ndarray, context_len: int, member: int | None = None):
        self.model, self.head, self.member = model, head, member
        self.device = next(model.parameters()).device
        self.agent_ids = torch.as_tensor(list(agent_ids), dtype=torch.long, device=self.device)
        self.target = np.asarray(target, dtype=np.float64).reshape(len(agent_ids))
        self.reward_scale = np.broadcast_to(np.asarray(reward_scale, dtype=np.float64), self.target.shape).copy()
        self.K = int(context_len)
        self.batch_size = 0

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        if mask is None or batch_size != self.batch_size:
            B, K, m, spec = batch_size, self.K, len(self.agent_ids), self.model.spec
            zeros = lambda *shape, dtype=torch.float32: torch.zeros(*shape, dtype=dtype, device=self.device)  # noqa: E731
            self.rtg, self.obs = zeros(B, K, m), zeros(B, K, m, spec.obs_dim)
            self.actions = zeros(B, K, m, dtype=torch.long) if spec.discrete else zeros(B, K, m, spec.act_dim)
            self.timesteps, self.t = zeros(B, K, dtype=torch.long), zeros(B, dtype=torch.long)
            self.mask = zeros(B, K, dtype=torch.bool)
            self.tracker = ReturnToGoTracker(self.target, B, self.reward_scale)
            self.batch_size = B
            return
        rows = torch.as_tensor(np.asarray(mask, dtype=bool), device=self.device)
        self.tracker.reset(mask)
        for buf in (self.rtg, self.obs, self.actions, self.timesteps, self.mask, self.t):
            buf[rows] = 0

    @torch.no_grad()
    def act(self, obs: np.ndarray, avail: np.ndarray | None, reward: np.ndarray | None) -> np.ndarray:
        """``obs [B, m, d]``, ``avail [B, m, A]``, ``reward [B, m]`` (None on the first step) -> actions [B, m(, a)]."""
        if self.batch_size != obs.shape[0]:
            raise ValueError(f"policy was reset for {self.batch_size} sub-envs, got observations for {obs.shape[0]}")
        if reward is not None:
            self.tracker.update(np.asarray(reward, dtype=np.float64))
        for buf in (self.rtg, self.obs, self.actions, self.timesteps, self.mask):
            buf[:, :-1] = buf[:, 1:].clone()  # drop the oldest step
        self.rtg[:, -1] = torch.as_tensor(self.tracker.current, device=self.device)
        self.obs[:, -1] = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        self.actions[:, -1] = 0
        self.timesteps[:, -1] = self.t.clamp(max=self.model.spec.max_timestep - 1)
        self.mask[:, -1] = True
        out = self.model(self.rtg, self.obs, self.actions, self.timesteps, self.mask, self.agent_ids, self.member,
                         last_only=True).action[:, :, -1].transpose(0, 1)  # [B, m, A | act_dim]
        mask = None if avail is None else torch.as_tensor(avail, dtype=torch.bool, device=self.device)
        action = self.head.greedy(out, mask)  # [B, m] | [B, m, act_dim]
        self.actions[:, -1] = action
        self.t += 1
        return action.cpu().numpy()


class DTAgentPolicy(AgentPolicy):
    """Agent ``agent``'s greedy DT policy (decentralized: its own observations, rewards and network)."""

    def __init__(self, model: DecisionTransformer, head: ActionHead, agent: int, target_return: float,
                 reward_scale: float, context_len: int):
        member = agent if model.spec.layout == "per_agent" else None
        if model.spec.centralized:
            raise ValueError(f"a {model.spec.layout}-layout DT (the teacher) acts for all agents: use DTJointPolicy")
        self.agent = agent
        self.context = DTContext(model, head, [agent], np.array([target_return]), np.array([reward_scale]), context_len,
                                 member)

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        self.context.reset(batch_size, mask)

    def act(self, obs: np.ndarray, avail: np.ndarray | None, last_reward: np.ndarray | None) -> np.ndarray:
        return self.context.act(obs[:, None], None if avail is None else avail[:, None],
                                None if last_reward is None else np.asarray(last_reward)[:, None])[:, 0]


class DTJointPolicy(JointPolicy):
    """The centralized teacher as a joint policy (reads every agent's observation and reward)."""

    def __init__(self, model: DecisionTransformer, head: ActionHead, target_return: np.ndarray,
                 reward_scale: np.ndarray, context_len: int):
        n = model.spec.n_agents
        self.context = DTContext(model, head, range(n), target_return, reward_scale, context_len)
        self._fresh: np.ndarray | None = None  # [B] sub-envs whose ts.reward belongs to the previous episode

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        self.context.reset(batch_size, mask)
        if self._fresh is None or mask is None or self._fresh.shape[0] != batch_size:
            self._fresh = np.ones(batch_size, dtype=bool)
        else:
            self._fresh |= np.asarray(mask, dtype=bool)

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        reward = None
        if not first:
            reward = np.asarray(ts.reward, dtype=np.float64).copy()
            reward[self._fresh] = 0.0
        actions = self.context.act(ts.obs, ts.avail_actions, reward)
        self._fresh[:] = False
        return actions


def dt_policies(model: DecisionTransformer, head: ActionHead, target_return: np.ndarray, reward_scale: np.ndarray,
                context_len: int) -> JointPolicy:
    """The evaluation policy of a DT: per-agent policies (decentralized) or, for the teacher, a joint one."""
    if model.spec.centralized:
        return DTJointPolicy(model, head, target_return, reward_scale, context_len)
    return DecentralizedPolicy([DTAgentPolicy(model, head, i, float(target_return[i]), float(reward_scale[i]),
                                              context_len)
                                for i in range(model.spec.n_agents)])
