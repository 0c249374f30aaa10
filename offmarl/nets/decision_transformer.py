"""The Decision-Transformer token layout shared by every sequence model in offmarl.

Token layout (Chen et al. 2021; kzl's ``decision_transformer.py``): per step t three tokens
``(R̂_t, o_t, a_t)``, each a linear embedding of its input plus the embedding of the step's timestep,
interleaved into a sequence of ``3K`` tokens for a window of K steps. The action a_t is predicted from
the output at the o_t token (which, by causality, has seen R̂_{≤t}, o_{≤t}, a_{<t}). Discrete actions:
logits (cross-entropy); continuous: ``tanh`` scaled to the action bounds (MSE), as kzl. Departure for
speed, same outputs: the last action token a_K is left out (``3K - 1`` tokens), since no o_t attends to it.

The *input layout* decides what one "agent sequence" is, so IDT, MADT, the centralized teacher and the
students share this one module (Tseng et al., *Offline Multi-Agent RL with Knowledge Distillation*, §3, App. B.1/B.3):

``per_agent`` (IDT, students)
    ``E = n`` independent transformers (member e = agent e); member e reads only agent e's return-to-go,
    observation and action. Heads: one per member.
``shared`` (MADT)
    one transformer for all agents; agent e's sequence is an independent batch row, its observation
    gets the one-hot agent id appended. Head: one.
``joint`` (the centralized teacher)
    one transformer over concatenated inputs: R̂_t = [R̂_t^1..R̂_t^n], o_t = [o_t^1..o_t^n],
    a_t = [a_t^1..a_t^n]; n agent-specific heads read the same o_t token.
``agent_tokens`` (a centralized teacher, beyond the paper)
    one transformer over ONE token per agent per step, ``n K`` tokens ordered (step, agent):
    ``x_t^i = E_R R̂_t^i + E_o o_t^i + E_a a_{t-1}^i + E_id[i]`` (+ the timestep embedding; a_{t-1} is zero
    at a window's first step and after padding) with embeddings shared by the agents and a learned agent-id
    embedding. Attention is block-causal: token (t, i) sees every agent's tokens of steps <= t, so the
    teacher still reads every agent's R̂_t and o_t when it predicts a_t^i, and no token holds an action of
    step t. Agent i's action and feature come from its own head on its own token (t, i): each agent's
    feature depends on that agent's token, where the joint layout derives all n from one shared token.

Action head (all layouts): ``Linear(d, f) → act → Linear(f, A)``; the hidden layer (after the
activation) is the agent's feature f (``features``); the raw output becomes losses and greedy actions
through :class:`offmarl.nets.action_head.ActionHead` (masked logits; ``tanh`` into the action Box).
For the teacher, f̂^i is the hidden layer of agent
i's own head, so features differ between agents (a linear head on one shared token would make every
f̂^i identical). Teacher and students use the same f, so their features have the same size (M = N is
possible). Departure: kzl's head is one linear layer; an MLP head is used for every DT so that IDT equals
a student trained without distillation.

Inputs are always the sampler's joint-layout tensors for ``m`` agents (``m = n`` in training, ``m = 1``
for one agent's policy), with ``agent_ids [m]`` naming which agents they are:
    rtg [B, K, m] f32, obs [B, K, m, d] f32, actions [B, K, m] i64 | [B, K, m, act_dim] f32,
    timesteps [B, K] i64, mask [B, K] bool (True = real step; pads may hold anything)
and outputs are agent-major: ``action [m, B, K, A or act_dim]``, ``features [m, B, K, f]``.
Observations are standardised per agent with statistics stored in the module (``set_obs_stats``). The
inputs and timesteps of pad steps are replaced by zeros before embedding, so pad contents (even NaN)
never reach any output.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from offmarl.nets.ensemble import EnsembleEmbedding, EnsembleLinear
from offmarl.nets.mlp import activation_layer
from offmarl.nets.transformer import CausalTransformer

LAYOUTS = ("per_agent", "shared", "joint", "agent_tokens")
CENTRALIZED_LAYOUTS = ("joint", "agent_tokens")  # one network acting for all agents at once (the teacher)


@dataclass(frozen=True)
class DTSpec:
    """Sizes of a Decision Transformer.

    layout: ``per_agent`` | ``shared`` | ``joint`` | ``agent_tokens`` (module docstring).
    n_agents, obs_dim: the env's agents and (padded) observation width.
    discrete: action kind; n_actions (discrete) or act_dim (continuous).
    hidden, n_layers, n_heads, dropout, activation: the transformer (keyword-only, required; kzl's 128, 3,
        1, 0.1, relu are ``offmarl.algos._sequence.DTConfig``'s defaults).
    feature_dim: width f of the action head's hidden layer (the distilled feature); 0 = kzl's linear head
        (features are then the o_t tokens themselves, width ``hidden``; not for the joint layout, whose
        agents would all get the same feature).
    max_timestep: size of the timestep embedding (episode limit + 1).
    """

    layout: str
    n_agents: int
    obs_dim: int
    discrete: bool
    _: KW_ONLY  # the sizes have no defaults here: the algorithms' configs (DTConfig) hold them, once
    hidden: int
    n_layers: int
    n_heads: int
    dropout: float
    activation: str
    feature_dim: int
    max_timestep: int
    n_actions: int = 0
    act_dim: int = 0

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown DT layout {self.layout!r}; known: {', '.join(LAYOUTS)}")
        if self.discrete and self.n_actions < 1 or not self.discrete and self.act_dim < 1:
            raise ValueError(f"DTSpec needs n_actions (discrete) or act_dim (continuous), got {self}")
        if self.feature_dim < 0 or self.feature_dim == 0 and self.layout == "joint":
            raise ValueError(f"feature_dim must be >= 1 for the joint (teacher) layout and >= 0 otherwise, got "
                             f"{self.feature_dim}: a linear head on the shared token gives every agent the same "
                             "feature")

    @property
    def action_width(self) -> int:
        """Width of one agent's action input/output: A (one-hot / logits) or act_dim."""
        return self.n_actions if self.discrete else self.act_dim

    @property
    def members(self) -> int:
        """Independent transformers: one per agent for ``per_agent``, else one."""
        return self.n_agents if self.layout == "per_agent" else 1

    @property
    def head_members(self) -> int:
        return 1 if self.layout == "shared" else self.n_agents

    def input_dims(self) -> tuple[int, int, int]:
        """Widths of the (return-to-go, observation, action) inputs of one token triple."""
        n, a = self.n_agents, self.action_width
        if self.layout == "joint":
            return n, n * self.obs_dim, n * a
        if self.layout == "shared":
            return 1, self.obs_dim + n, a
        return 1, self.obs_dim, a  # per_agent; agent_tokens: one agent's inputs per token

    @property
    def centralized(self) -> bool:
        """One network acting for all agents at once from all their inputs (the teacher's layouts)."""
        return self.layout in CENTRALIZED_LAYOUTS


class DTOutput(NamedTuple):
    action: torch.Tensor  # [m, B, K, A] logits or [m, B, K, act_dim] raw (unsquashed) continuous output
    features: torch.Tensor  # [m, B, K, f] hidden layer of each agent's head (o_t tokens when feature_dim = 0)


class MLPHead(nn.Module):
    """``members`` MLP heads ``Linear(d, f) → act → Linear(f, out)``; returns (output, hidden layer).
    ``feature_dim = 0``: kzl's single ``Linear(d, out)``, and the "features" are its input tokens.

    Initialised like ``torch.nn.Linear`` (kzl's heads): with GPT-2's std 0.02 in both layers the head's
    output and gradients start ~100x smaller than a single linear head's and training starts slowly."""

    def __init__(self, members: int, hidden: int, feature_dim: int, out_dim: int, activation: str):
        super().__init__()
        self.fc = EnsembleLinear(members, hidden, feature_dim, std=None) if feature_dim else None
        self.act = activation_layer(activation)
        self.out = EnsembleLinear(members, feature_dim or hidden, out_dim, std=None)

    def forward(self, x: torch.Tensor, member: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        f = x if self.fc is None else self.fc(x, member, self.act)
        return self.out(f, member), f


class DecisionTransformer(nn.Module):
    """(R̂, o, a)-token Decision Transformer with a configurable input layout (module docstring)."""

    def __init__(self, spec: DTSpec):
        super().__init__()
        self.spec = spec
        E, d = spec.members, spec.hidden
        rtg_dim, obs_dim, act_dim = spec.input_dims()
        self.embed_rtg = EnsembleLinear(E, rtg_dim, d)
        self.embed_obs = EnsembleLinear(E, obs_dim, d)
        self.embed_act = EnsembleLinear(E, act_dim, d)
        self.transformer = CausalTransformer(d, spec.n_layers, spec.n_heads, spec.max_timestep, spec.dropout,
                                             spec.activation, members=E)
        self.head = MLPHead(spec.head_members, d, spec.feature_dim, spec.action_width, spec.activation)
        if spec.layout == "agent_tokens":  # built last: the other layouts' initial weights stay as they were
            self.embed_agent = EnsembleEmbedding(1, spec.n_agents, d)
        self.register_buffer("obs_mean", torch.zeros(spec.n_agents, spec.obs_dim))
        self.register_buffer("obs_std", torch.ones(spec.n_agents, spec.obs_dim))

    @torch.no_grad()
    def set_obs_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-agent observation statistics ``[n, obs_dim]`` (std below 1e-6 is treated as 1)."""
        self.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        std = torch.as_tensor(std, dtype=torch.float32)
        self.obs_std.copy_(torch.where(std < 1e-6, torch.ones_like(std), std))

    # ---- input builders: joint-layout tensors of m agents -> [E, B', K, *] token inputs ----------------
    def _inputs(self, rtg: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor, timesteps: torch.Tensor,
                mask: torch.Tensor, agent_ids: torch.Tensor):
        spec = self.spec
        B, K, m = rtg.shape
        obs = (obs - self.obs_mean[agent_ids]) / self.obs_std[agent_ids]  # [B, K, m, d]
        if spec.discrete:
            act = F.one_hot(actions.clamp(0, spec.n_actions - 1), spec.n_actions).to(obs.dtype)  # [B, K, m, A]
        else:
            act = actions.to(obs.dtype)  # [B, K, m, act_dim]
        if spec.layout == "joint":
            if m != spec.n_agents:
                raise ValueError(f"a joint-layout DT needs all {spec.n_agents} agents, got {m}")
            return (rtg[None], obs.reshape(1, B, K, -1), act.reshape(1, B, K, -1), timesteps[None], mask)
        rtg_e = rtg.permute(2, 0, 1).unsqueeze(-1)  # [m, B, K, 1]
        obs_e, act_e = obs.permute(2, 0, 1, 3), act.permute(2, 0, 1, 3)  # [m, B, K, *]
        if spec.layout == "per_agent":
            return rtg_e, obs_e, act_e, timesteps[None], mask
        ids = F.one_hot(agent_ids, spec.n_agents).to(obs.dtype)[:, None, None, :].expand(m, B, K, spec.n_agents)
        obs_e = torch.cat([obs_e, ids], dim=-1)
        flat = lambda x: x.reshape(1, m * B, *x.shape[2:])  # noqa: E731  agent-major rows: row = agent * B + b
        return flat(rtg_e), flat(obs_e), flat(act_e), timesteps.repeat(m, 1)[None], mask.repeat(m, 1)

    def forward(self, rtg: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor, timesteps: torch.Tensor,
                mask: torch.Tensor, agent_ids: torch.Tensor | None = None, member: int | None = None,
                last_only: bool = False) -> DTOutput:
        """Predict every step's action from its o_t token; shapes in the module docstring.

        ``member`` (per_agent layout, one agent's inputs): run only that agent's transformer and head.
        ``last_only``: predict the last step only (outputs ``[m, B, 1, *]``; what a policy needs).
        """
        spec = self.spec
        B, K, m = rtg.shape
        if agent_ids is None:
            agent_ids = torch.arange(m, device=rtg.device)
        if member is not None and (spec.layout != "per_agent" or m != 1):
            raise ValueError("member= selects one agent's network of a per_agent DT given that agent's inputs (m = 1)")
        if spec.layout == "agent_tokens":
            return self._forward_agent_tokens(rtg, obs, actions, timesteps, mask, agent_ids, last_only)
        r, o, a, t, key_mask = self._inputs(rtg, obs, actions, timesteps, mask, agent_ids)
        live = key_mask[None, :, :, None]  # [1, B', K, 1]: the inputs of pad steps become zeros (pad tokens
        r, o, a = (torch.where(live, x, 0.0) for x in (r, o, a))  # are then constants, whatever the pads held)
        t = torch.where(key_mask, t, 0)
        tokens = torch.stack([self.embed_rtg(r, member), self.embed_obs(o, member), self.embed_act(a, member)], dim=3)
        # [E, B', 3K - 1, d] ordered R_1, o_1, a_1, R_2, ..., o_K: the last action token is left out, since no
        # o_t attends to it (same outputs, 1/3K fewer tokens)
        tokens = tokens.flatten(2, 3)[:, :, :-1]
        t3 = t.repeat_interleave(3, dim=-1)[..., :-1]  # [E|1, B', 3K - 1]
        rows = slice(3 * K - 2, 3 * K - 1) if last_only else slice(1, None, 3)  # the o_t tokens
        h_obs = self.transformer(tokens, t3, key_mask.repeat_interleave(3, dim=-1)[:, :-1],
                                 member, rows)  # [E, B', K|1, d]
        out, feats = self.head(h_obs, member)  # [Eh, B', K|1, *]
        if spec.layout == "shared":
            out, feats = out.reshape(m, B, -1, out.shape[-1]), feats.reshape(m, B, -1, feats.shape[-1])
        return DTOutput(out, feats)

    def _forward_agent_tokens(self, rtg: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor,
                              timesteps: torch.Tensor, mask: torch.Tensor, agent_ids: torch.Tensor,
                              last_only: bool) -> DTOutput:
        """The ``agent_tokens`` layout (module docstring): one token per agent per step, block-causal."""
        spec = self.spec
        B, K, m = rtg.shape
        if m != spec.n_agents:
            raise ValueError(f"an agent_tokens DT acts for all {spec.n_agents} agents, got {m}")
        obs = (obs - self.obs_mean[agent_ids]) / self.obs_std[agent_ids]  # [B, K, n, d]
        if spec.discrete:
            act = F.one_hot(actions.clamp(0, spec.n_actions - 1), spec.n_actions).to(obs.dtype)  # [B, K, n, A]
        else:
            act = actions.to(obs.dtype)  # [B, K, n, act_dim]
        live = mask[:, :, None, None]  # [B, K, 1, 1]: pad steps' inputs become zeros, whatever they held
        r, o, a = (torch.where(live, x, 0.0) for x in (rtg.unsqueeze(-1), obs, act))
        prev = torch.cat([torch.zeros_like(a[:, :1]), a[:, :-1]], dim=1)  # a_{t-1}^i [B, K, n, A]
        ids = self.embed_agent(agent_ids[None])[:, None, None]  # [1, 1, 1, n, d]
        tokens = self.embed_rtg(r[None]) + self.embed_obs(o[None]) + self.embed_act(prev[None]) + ids  # [1, B, K, n, d]
        tokens = tokens.flatten(2, 3)  # [1, B, K n, d] ordered (step, agent)
        t = torch.where(mask, timesteps, 0).repeat_interleave(m, dim=-1)[None]  # [1, B, K n]
        step_of = torch.arange(K, device=rtg.device).repeat_interleave(m)  # [K n]
        allowed = step_of[None, :] <= step_of[:, None]  # [K n, K n] block-causal
        rows = slice((K - 1) * m, K * m) if last_only else None
        h = self.transformer(tokens, t, mask.repeat_interleave(m, dim=-1), None, rows, allowed)  # [1, B, K'n, d]
        h = h.reshape(B, -1, m, h.shape[-1]).permute(2, 0, 1, 3)  # [n, B, K', d]: agent i's own tokens
        out, feats = self.head(h)  # [n, B, K', *]
        return DTOutput(out, feats)


class OthersReturnZeroed(nn.Module):
    """A centralized DT (``joint`` / ``agent_tokens``) whose prediction for agent i reads every other agent's
    return-to-go as 0 at every position: the hindsight check of a teacher (the sum of all agents' returns-to-go
    may reveal how the episode ends, which agent i's own return-to-go alone would not).

    Same call and outputs as the wrapped model; runs it once on ``n`` copies of the batch, copy i with only
    agent i's return-to-go kept, and returns agent i's outputs from copy i."""

    def __init__(self, model: DecisionTransformer):
        super().__init__()
        if not model.spec.centralized:
            raise ValueError(f"the hindsight check needs a centralized DT (the teacher), not a {model.spec.layout} one")
        self.model = model
        self.spec = model.spec

    def forward(self, rtg: torch.Tensor, obs: torch.Tensor, actions: torch.Tensor, timesteps: torch.Tensor,
                mask: torch.Tensor, agent_ids: torch.Tensor | None = None, member: int | None = None,
                last_only: bool = False) -> DTOutput:
        B, K, n = rtg.shape
        keep = torch.eye(n, dtype=rtg.dtype, device=rtg.device)  # [copy i, agent j] = 1 where j == i
        r = (rtg[None] * keep[:, None, None, :]).reshape(n * B, K, n)  # [n B, K, n]

        def copies(x: torch.Tensor) -> torch.Tensor:
            return x[None].expand(n, *x.shape).reshape(n * B, *x.shape[1:])

        out = self.model(r, copies(obs), copies(actions), copies(timesteps), copies(mask), agent_ids, member, last_only)
        own = torch.arange(n, device=rtg.device)

        def diagonal(x: torch.Tensor) -> torch.Tensor:  # [n, n B, K, *] -> agent i of copy i: [n, B, K, *]
            return x.reshape(n, n, B, *x.shape[2:])[own, own]

        return DTOutput(diagonal(out.action), diagonal(out.features))
