"""Agent networks of the value-based learners: all agents in one module, shared or per-agent weights.

Layout convention: the agent axis is the one just before the feature axis, ``x [..., n, d]``. Every
layer here is a :class:`GroupLinear` holding ``G`` weight matrices ``[G, in, out]``:

* ``shared=True`` (``G = 1``): one set of weights for every agent, and agent i's input gets the
  one-hot agent id appended (pymarl's ``obs_agent_id``, the convention of QMIX-family code bases and of
  SIT's GRU agents), so agents can still behave differently;
* ``shared=False`` (``G = n``): agent i has its own weights (no id input); all n agents still run in one
  batched ``einsum`` -- no Python loop over agents.

Either way agent i's output depends only on agent i's own input, so the same module runs a single agent
at decentralized execution (``group=i``; see :meth:`AgentNetwork.features_agent`).

:class:`AgentNetwork` = encoder + head:

* ``kind="mlp"`` (Tseng et al. App. B.4–B.6, "3-layer MLP with hidden dimensions 256"): encoder
  ``Linear(in, H)``-ReLU on the current observation; head ``n_layers - 1`` layers
  ``[H (+ act_dim)] -> H -> ... -> out``. With ``n_layers=3`` this is in → H → H → out.
* ``kind="gru"`` (SIT Table 11, "RNN hidden dimension 64"; pymarl's ``RNNAgent``): encoder
  ``Linear(in, H)``-ReLU-``GRUCell(H, H)`` over the agent's observation history; head ``Linear(H, out)``,
  or ``[H + act_dim] -> H -> out`` for a critic that takes an action.

A critic of continuous actions (``action_in = act_dim``) gets the action at the head, after the
encoder, so Q_i can be evaluated at many candidate actions from one encoding of the history:
``head(features [..., K, n, H] (broadcast), actions [..., K, n, act_dim])``.

Masks for unavailable actions live with the losses (``offmarl.algos._value``): the networks output
raw values for every action.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from offmarl.nets.mlp import activation_layer


class GroupLinear(nn.Module):
    """``G`` independent affine maps ``[G, in, out]`` applied along the agent axis (module docstring).

    ``forward(x [..., n, in])`` → ``[..., n, out]`` (``G = 1`` broadcasts over any ``n``; ``G = n`` maps
    agent i with matrix i); ``forward(x [..., in], group=g)`` applies matrix g (0 when ``G = 1``).
    Initialised like ``nn.Linear`` (uniform in ``±1/sqrt(in)``), independently per group.
    """

    def __init__(self, groups: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(groups, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, out_dim).uniform_(-bound, bound))
        self.groups = groups

    def forward(self, x: torch.Tensor, group: int | None = None) -> torch.Tensor:
        if group is not None:
            g = 0 if self.groups == 1 else group
            return torch.matmul(x, self.weight[g]) + self.bias[g]
        if self.groups == 1:
            return torch.matmul(x, self.weight[0]) + self.bias[0]
        if x.shape[-2] != self.groups:
            raise ValueError(f"GroupLinear with {self.groups} groups got {x.shape[-2]} agents in x {list(x.shape)}")
        return torch.einsum("...gi,gio->...go", x, self.weight) + self.bias


class GroupMLP(nn.Module):
    """``n_layers`` :class:`GroupLinear` layers with ``activation`` between them (none after the last; ReLU
    by default, any of :data:`offmarl.nets.mlp.ACTIVATIONS`)."""

    def __init__(self, groups: int, in_dim: int, hidden: int, out_dim: int, n_layers: int,
                 activation: str = "relu"):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"GroupMLP needs n_layers >= 1, got {n_layers}")
        widths = [in_dim] + [hidden] * (n_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(GroupLinear(groups, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.activation = activation_layer(activation)

    def forward(self, x: torch.Tensor, group: int | None = None) -> torch.Tensor:
        for k, layer in enumerate(self.layers):
            if k:
                x = self.activation(x)
            x = layer(x, group)
        return x


class GroupGRUCell(nn.Module):
    """A GRU cell (``torch.nn.GRUCell``'s equations) with :class:`GroupLinear` weights."""

    def __init__(self, groups: int, in_dim: int, hidden: int):
        super().__init__()
        self.input = GroupLinear(groups, in_dim, 3 * hidden)
        self.recurrent = GroupLinear(groups, hidden, 3 * hidden)
        self.hidden = hidden

    def forward(self, x: torch.Tensor, h: torch.Tensor, group: int | None = None,
                projected: bool = False) -> torch.Tensor:
        """One step from input ``x`` (or, ``projected``, from ``self.input(x)`` computed beforehand: a
        sequence projects all its steps' inputs in one call) and hidden state ``h``."""
        xr, xz, xn = (x if projected else self.input(x, group)).chunk(3, dim=-1)
        hr, hz, hn = self.recurrent(h, group).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1.0 - z) * n + z * h


AGENT_KINDS = ("mlp", "gru")


class AgentNetwork(nn.Module):
    """The n agents' networks (module docstring). ``out_dim``: actions (Q-values / logits) or act_dim.

    Shapes: ``features(obs [B, T, n, d]) -> [B, T, n, H]`` (a GRU runs over T from a zero hidden state;
    an MLP treats every step alone); ``head(features [..., n, H], actions [..., n, act_dim] | None) ->
    [..., n, out_dim]``; one agent: ``features_agent(obs [B, d], i, h [B, H] | None) -> (f [B, H], h)``
    and ``head(f, a, group=i)``.
    """

    def __init__(self, kind: str, n_agents: int, obs_dim: int, out_dim: int, hidden: int, n_layers: int = 3,
                 shared: bool = True, action_in: int = 0):
        super().__init__()
        if kind not in AGENT_KINDS:
            raise ValueError(f"unknown agent network {kind!r}; known: {', '.join(AGENT_KINDS)}")
        if kind == "mlp" and n_layers < 2:
            raise ValueError(f"an mlp agent needs n_layers >= 2 (encoder + output), got {n_layers}")
        self.kind, self.n_agents, self.obs_dim, self.hidden = kind, n_agents, obs_dim, hidden
        self.shared, self.action_in, self.out_dim = shared, action_in, out_dim
        groups = 1 if shared else n_agents
        in_dim = obs_dim + (n_agents if shared else 0)
        self.encoder = GroupLinear(groups, in_dim, hidden)
        self.rnn = GroupGRUCell(groups, hidden, hidden) if kind == "gru" else None
        head_layers = n_layers - 1 if kind == "mlp" else (1 if action_in == 0 else 2)
        self.head_net = GroupMLP(groups, hidden + action_in, hidden, out_dim, head_layers)

    @property
    def recurrent(self) -> bool:
        return self.rnn is not None

    # ---- all agents --------------------------------------------------------------------------------
    def _with_id(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.shared:
            return obs
        ids = torch.eye(self.n_agents, dtype=obs.dtype, device=obs.device)  # [n, n]
        return torch.cat([obs, ids.expand(*obs.shape[:-1], self.n_agents)], dim=-1)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs [B, T, n, d]`` → ``[B, T, n, H]``."""
        x = F.relu(self.encoder(self._with_id(obs)))
        if self.rnn is None:
            return x
        h = x.new_zeros(x.shape[0], x.shape[2], self.hidden)  # [B, n, H]
        out = []
        # every step's input projection in one call; unbind, not [:, t]: indexing step t would make the
        # backward zero-fill a whole [B, T, ...] gradient for every step
        for x_t in self.rnn.input(x).unbind(1):  # the recurrence is sequential in time
            h = self.rnn(x_t, h, projected=True)
            out.append(h)
        return torch.stack(out, dim=1)

    def head(self, features: torch.Tensor, actions: torch.Tensor | None = None,
             group: int | None = None) -> torch.Tensor:
        if self.action_in:
            if actions is None:
                raise ValueError("this network is a critic of continuous actions: pass the actions to head()")
            shape = torch.broadcast_shapes(features.shape[:-1], actions.shape[:-1])
            features = torch.cat([features.expand(*shape, features.shape[-1]),
                                  actions.expand(*shape, actions.shape[-1])], dim=-1)
        return self.head_net(features, group)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        """``head(features(obs), actions)`` for ``obs [B, T, n, d]``."""
        return self.head(self.features(obs), actions)

    def step(self, obs: torch.Tensor, h: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One step of all agents: ``obs [B, n, d]``, GRU state ``h [B, n, H]`` (zeros if None) → the head's
        output ``[B, n, out]`` and the next state (an online learner's rollout)."""
        x = F.relu(self.encoder(self._with_id(obs)))
        if self.rnn is not None:
            x = h = self.rnn(x, torch.zeros_like(x) if h is None else h)
        return self.head(x), h

    # ---- one agent (decentralized execution) -----------------------------------------------------------
    def features_agent(self, obs: torch.Tensor, agent: int, h: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Agent ``agent``'s features from its own ``obs [B, d]`` and GRU state ``h [B, H]`` (zeros if None)."""
        if self.shared:
            ids = torch.zeros(obs.shape[0], self.n_agents, dtype=obs.dtype, device=obs.device)
            ids[:, agent] = 1.0
            obs = torch.cat([obs, ids], dim=-1)
        x = F.relu(self.encoder(obs, group=agent))
        if self.rnn is None:
            return x, None
        h = x.new_zeros(x.shape[0], self.hidden) if h is None else h
        h = self.rnn(x, h, group=agent)
        return h, h
