"""The exact tabular MABCQ operator on a two-agent matrix game (Jiang & Lu, *Offline Decentralized MARL*,
§3.1–3.2, Tables 1–4, App. B). Pure numpy; no learning.

Agent i sees a one-step game: from the start state it plays a_i and lands in an outcome s' that
depends on the other agent's action a_{−i}, with value V(s') = payoff(a_1, a_2) (the shared reward of
the outcome state). In agent i's dataset the outcome of a_i follows the other agent's behaviour
policy, ``P_B(s' = a_{−i} | a_i) = β_{−i}(a_{−i})``; outcomes of zero behaviour probability never occur
and are dropped. For each variant the operator modifies that distribution,

    bcq     P̂ = P_B                                                   (Table 2)
    tn      P̂ ∝ P_B · λ_tn,  λ_tn = 1 / P_B        → uniform over the observed outcomes
    vd      P̂ ∝ P_B · λ_vd,  λ_vd = clip(1 + (V(s') − E V) / |E V|, 1 − ε, 1 + ε)      (Table 3)
    vd_tn   P̂ ∝ P_B · λ_tn · λ_vd                                     (Table 4)

and the expected return of a_i is ``Σ_{s'} P̂(s'|a_i) V(s')``; each agent picks its argmax (the first
on ties), and the joint action's payoff is reported.

E V. In the deep learner ``E V = (Q̂(s, a) − r)/γ`` is the current estimate itself, so the operator
iterates ``Q ← Σ P̂(Q) V`` with ``E V = Q`` to its fixed point, starting from the unmodified
expectation under ``P_B · λ_tn``. Without clipping (``epsilon=None``; the paper's matrix game)
``λ_vd = V / E V`` for ``E V > 0`` and the normalisation cancels E V, so one step is exact:
``P̂ ∝ P_B λ_tn V`` -- the numbers of Tables 3 and 4 (Table 3's 4.52 is the paper's rounding of
0.12 · 1 + 0.88 · 5; the exact value is 15.4 / 3.4 = 4.53).
"""

from __future__ import annotations

from typing import Any

import numpy as np

VARIANTS = ("bcq", "vd", "tn", "vd_tn")


def _value_deviation(values: np.ndarray, expected: float, epsilon: float | None) -> np.ndarray:
    lam = 1.0 + (values - expected) / max(abs(expected), 1e-8)
    return lam if epsilon is None else np.clip(lam, 1.0 - epsilon, 1.0 + epsilon)


def modified_transition(p: np.ndarray, values: np.ndarray, variant: str, epsilon: float | None = None,
                        max_iter: int = 10_000, tol: float = 1e-12) -> np.ndarray:
    """P̂ over one action's observed outcomes (``p`` > 0, summing to 1; ``values`` their V(s'))."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    base = np.full_like(p, 1.0 / len(p)) if variant in ("tn", "vd_tn") else p  # P_B · λ_tn, normalised
    if variant in ("bcq", "tn"):
        return base
    expected = float(base @ values)
    for _ in range(max_iter):
        weighted = base * _value_deviation(values, expected, epsilon)
        p_hat = weighted / weighted.sum()
        new = float(p_hat @ values)
        if abs(new - expected) <= tol:
            break
        expected = new
    return p_hat


def tabular_mabcq(payoff: Any, behavior: Any, variant: str, epsilon: float | None = None) -> dict[str, Any]:
    """The operator of the module docstring for one variant.

    ``payoff [m, k]`` (agent 1 picks the row), ``behavior = [β_1 (m), β_2 (k)]``. Returns
    ``{"joint_action": [a1, a2], "payoff": x, "agents": [{"expected_return": [per action],
    "transition": [[p per outcome] per action], "outcomes": [other agent's action per outcome]}, ...]}``
    with actions indexed from 0. An action the agent never plays (behaviour probability 0) has
    expected return None and an empty transition list, and is never chosen.
    """
    payoff = np.asarray(payoff, dtype=np.float64)
    betas = [np.asarray(b, dtype=np.float64) for b in behavior]
    agents, choice = [], []
    for i in range(2):
        other = betas[1 - i]
        outcomes = np.flatnonzero(other > 0)
        p = other[outcomes] / other[outcomes].sum()
        returns: list[float | None] = []
        transitions: list[list[float]] = []
        for a in range(payoff.shape[i]):
            if betas[i][a] <= 0:
                returns.append(None)
                transitions.append([])
                continue
            values = payoff[a, outcomes] if i == 0 else payoff[outcomes, a]
            p_hat = modified_transition(p, values, variant, epsilon)
            returns.append(float(p_hat @ values))
            transitions.append([float(x) for x in p_hat])
        seen = [r if r is not None else -np.inf for r in returns]
        choice.append(int(np.argmax(seen)))
        agents.append({"expected_return": returns, "transition": transitions, "outcomes": outcomes.tolist()})
    return {"joint_action": choice, "payoff": float(payoff[choice[0], choice[1]]), "agents": agents}
