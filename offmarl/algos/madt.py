"""Multi-Agent Decision Transformer (``madt``): one DT shared by all agents, one-hot agent id appended.

Reference: Meng et al. (MADT), as run by Tseng et al. App. B.3 and Table 6
(*Offline Multi-Agent RL with Knowledge Distillation*): a GPT-2-like backbone "with two-layer transformer
blocks", parameters shared across agents, the one-hot agent id concatenated to each observation
(Tseng et al. §1, Fig. 2b). Agent i's sequence (R̂^i, [o^i, onehot(i)], a^i) is an
independent row of the batch:

    L = (1/n) sum_i E_t [ CE(π(R̂_{≤t}^i, [o^i, e_i]_{≤t}, a_{<t}^i), a_t^i) ]   (MSE for continuous actions)

Execution is decentralized (each agent runs the shared network on its own history); training shares
weights, so ``decentralized_training`` is False.

Departure: MADT's official code (offline part) is the same DT layout; its online fine-tuning (MAPPO) is
not part of this offline baseline.
"""

from __future__ import annotations

import dataclasses

from offmarl.algos._sequence import DTAlgorithm, DTConfig
from offmarl.algos.base import register_algo


@dataclasses.dataclass(frozen=True)
class Config(DTConfig):
    """MADT: the common DT fields with 2 transformer layers (App. B.3); Table 6: lr 1e-4, wd 1e-4."""

    n_layers: int = 2


@register_algo
class MADT(DTAlgorithm):
    """One parameter-shared DT for every agent, with the agent's one-hot id in its observation tokens."""

    name = "madt"
    Config = Config
    layout = "shared"
