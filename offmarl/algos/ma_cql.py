"""Multi-agent CQL with a mixer (``ma_cql``): offline QMIX plus CQL's conservative term.

SIT (Tian et al.) App. B, Eq. 13 ("MACQL", β_CQL = 2.0 in Table 11) and Tseng et al.
App. B.4 / Table 7 ("MA-CQL", 3-layer MLP agents, QMIX mixer). Kumar et
al. 2020 (CQL). The learner is :class:`offmarl.algos.qmix.QMIX` with the term added to the critic loss.
"""

from __future__ import annotations

import dataclasses

import torch

from offmarl.algos._centralized import Sequences
from offmarl.algos._value import counterfactual_agent_qs, cql_gap, masked_mean
from offmarl.algos.base import register_algo
from offmarl.algos.qmix import QMIX
from offmarl.algos.qmix import Config as QMIXConfig


@dataclasses.dataclass(frozen=True)
class Config(QMIXConfig):
    """MA-CQL, SIT Eq. 13:

        L_CQL = β_CQL E_B[ Σ_i log Σ_{a_i} exp Q_tot(τ, (a_i, a_{−i}), s) − Q_tot(τ, a, s) ]
                + ½ E_B[(y_CQL − Q_tot(τ, a, s))²]

    Discrete. The inner sum runs over agent i's *available* actions with the other agents at their
    dataset actions, mixed by the (monotonic) mixer. For SIT's linear mixer ``Q_tot = Σ w_i Q_i + b``
    this is ``Σ_i [log Σ_{a_i} exp(w_i Q_i(τ_i, a_i)) − w_i Q_i(τ_i, a_i^data)]``, Eq. 13's per-agent
    logsumexp. Departure: Eq. 13 as printed puts ``+ b`` inside each of the n logsumexps and once in
    Q_tot, i.e. an extra ``(n − 1) b`` that pushes the mixer's bias down without bound; with the other
    agents held at their dataset actions the bias cancels, as in single-agent CQL. The same form works
    for the QMIX mixer of the ``tseng`` preset, where ``w_i`` is not defined. offmarl weights the TD
    term by 1 (CQL's reference code) instead of ½; β_CQL is relative to it.

    y_CQL: the n-step Tree-Backup estimate of the greedy policy (``offmarl.algos._value.
    tree_backup_targets``; SIT: "n-step off-policy estimation (e.g., Tree Backup)"): it follows the
    dataset while the dataset's joint action is the greedy one and bootstraps with the double-Q max at
    the first deviation. Default ``n_step``: 1 with the ``tseng`` preset (one-step targets on single
    transitions, CQL's reference DQN code), 5 with ``sit`` (whole-episode batches; SIT names no n).

    Continuous ("CQL-regularised mixed critic", SIT and Tseng only use discrete MACQL): the FACMAC-style
    learner of :mod:`offmarl.algos.qmix` (critics Q_i(τ_i, a_i), mixer, deterministic actors) with the
    logsumexp over agent i's actions replaced by its Monte-Carlo form over K uniform actions from the
    Box and K actions of agent i's current actor perturbed by N(0, (0.1·(high − low)/2)²):
        β_CQL Σ_i [ log (1/2K) Σ_k exp Q_tot(τ, (a_i^k, a_{−i}), s) − Q_tot(τ, a, s) ]
    (CQL(H)'s sampled logsumexp without its importance weights). The targets are one-step (a
    deterministic actor gives the dataset action probability 0, so Tree Backup reduces to one step).

    Fields (beyond :class:`offmarl.algos.qmix.Config`):
        beta_cql: β_CQL (2.0, SIT Table 11).
        n_step: Tree-Backup horizon (None: preset, tseng 1 / sit 5).
        n_action_samples: K, uniform and actor samples each per agent (continuous; 10, CQL's reference).
    """

    beta_cql: float = 2.0
    n_step: int | None = None
    n_action_samples: int = 10


@register_algo
class MACQL(QMIX):
    """MA-CQL: QMIX / FACMAC + CQL's conservative term (see :class:`Config`)."""

    name = "ma_cql"
    Config = Config
    learns_from = ("dataset",)  # an offline method: CQL's term has no online meaning
    online_preset = None
    preset_extras = {"tseng": {"n_step": 1}, "sit": {"n_step": 5}}

    def __init__(self, spec, config, device="cpu"):
        super().__init__(spec, config, device)
        if self.config.n_step < 1:
            raise ValueError(f"ma_cql: n_step must be >= 1, got {self.config.n_step}")
        if self.config.n_action_samples < 1:
            raise ValueError(f"ma_cql: n_action_samples must be >= 1, got {self.config.n_action_samples}")

    @property
    def n_step(self) -> int:
        return int(self.config.n_step) if self.spec.discrete else 1

    @property
    def uses_episodes(self) -> bool:
        return super().uses_episodes or self.n_step > 1

    def conservative_loss(self, seq: Sequences, f_now: torch.Tensor, q_taken: torch.Tensor, q_tot: torch.Tensor
                          ) -> tuple[torch.Tensor, dict[str, float]]:
        state = seq.state_now[:, :, None, None, :]  # [B, L, 1, 1, S] broadcast over (agent, action)
        if self.spec.discrete:
            q_alt = self.nets["critic"].head(f_now)  # [B, L, n, A]: every action of agent i
            avail = seq.avail_now
        else:
            q_alt = self._sampled_action_values(seq, f_now)  # [B, L, n, 2K]
            avail = None
        joint = counterfactual_agent_qs(q_alt, q_taken)  # [B, L, n, A|2K, n]
        q_tot_alt = self.nets["mixer"](joint, state).squeeze(-1)  # [B, L, n, A|2K]
        gap = masked_mean(cql_gap(q_tot_alt, q_tot, avail, log_mean=not self.spec.discrete), seq.mask)
        return self.config.beta_cql * gap, {"cql_gap": gap.item()}

    def _sampled_action_values(self, seq: Sequences, features: torch.Tensor) -> torch.Tensor:
        """Q_i(τ_i, a) at K uniform and K perturbed-actor actions per agent, ``[B, L, n, 2K]``."""
        B, L = seq.mask.shape
        K = self.config.n_action_samples
        head = self.action_head
        uniform = self.uniform_actions((B, L, K, self.n))  # [B, L, K, n, act]
        with torch.no_grad():
            a_pi = self.squash(self.nets["actor"](seq.obs[:, :-1])).unsqueeze(2)  # [B, L, 1, n, act]
            noise = 0.1 * 0.5 * (head.high - head.low) * torch.randn(B, L, K, self.n, head.low.numel(),
                                                                      device=self.device)
            near_pi = torch.maximum(torch.minimum(a_pi + noise, head.high), head.low)
        actions = torch.cat([uniform, near_pi], dim=2)  # [B, L, 2K, n, act]
        q = self.nets["critic"].head(features.unsqueeze(2), actions).squeeze(-1)  # [B, L, 2K, n]
        return q.transpose(-1, -2)
