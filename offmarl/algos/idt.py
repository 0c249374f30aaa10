"""Independent Decision Transformer (``idt``): one Decision Transformer per agent on its own data.

Reference: Tseng et al., *Offline Multi-Agent RL with Knowledge Distillation*, §3.1 and App. B.1,
Table 4; the "IDT" rows of Tables 1-2. For each agent i a separate DT π^i predicts
a_t^i from agent i's own last K steps of (R̂^i, o^i, a^i):

    L^i = E_t [ CE(π^i(R̂_{≤t}^i, o_{≤t}^i, a_{<t}^i), a_t^i) ]      (discrete; MSE for continuous actions)

with R̂_t^i agent i's (scaled) return-to-go. The update minimises sum_i L^i; the n networks are stacked
(``offmarl.nets.ensemble``) and independent -- agent i's network reads only agent i's slice of a batch,
its gradient is ∇L^i alone (clipped per agent), and AdamW is elementwise -- so training them together
equals training n separate DTs on n per-agent datasets drawn at the same windows. Decentralized
execution: agent i's policy reads only agent i's observations and rewards.

Departure (every DT in offmarl): the action head is ``Linear → ReLU → Linear`` instead of kzl's single
linear layer (:mod:`offmarl.nets.decision_transformer`), so IDT is exactly a distillation student
without the distillation terms.
"""

from __future__ import annotations

import dataclasses

from offmarl.algos._sequence import DTAlgorithm, DTConfig
from offmarl.algos.base import register_algo


@dataclasses.dataclass(frozen=True)
class Config(DTConfig):
    """IDT: the common DT fields (:class:`offmarl.algos._sequence.DTConfig`; Table 4: lr 1e-4, weight
    decay 1e-4; 3 layers, hidden 128, 1 head, K = 20 from kzl)."""


@register_algo
class IDT(DTAlgorithm):
    """One DT per agent, each trained on its agent's (return-to-go, observation, action) only."""

    name = "idt"
    Config = Config
    layout = "per_agent"
    decentralized_training = True
