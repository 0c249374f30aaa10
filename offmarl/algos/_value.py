"""Shared pieces of the value-based learners (qmix, ma_cql, ma_icq, ma_bcq, dec_mabcq): pure functions.

Notation (shapes in comments): ``B`` batch, ``L`` sequence length (1 for single transitions), ``n``
agents, ``A`` discrete actions, ``K`` sampled actions. ``avail`` masks are bool with True = available;
every max / argmax / logsumexp / softmax over actions here ignores unavailable actions.

Presets (:data:`PRESETS`) of the centralized baselines, because the papers differ:

* ``tseng`` -- Tseng et al. App. B.4–B.6 and Tables 7–9: 3-layer MLP
  agents with hidden 256; a QMIX mixing network, "2-layer MLP with hidden dimension 64" (embedding 64,
  two-layer hypernetworks of width 64); lr 1e-4 with weight decay 1e-4 (AdamW); batch 128.
  Unstated, chosen: discount 0.99; soft target updates τ = 0.005 (CQL's reference code); gradient-norm
  clipping 10 (SIT Table 11 / pymarl's default).
* ``sit`` -- SIT (Tian et al.) Table 11: GRU agents with hidden 64, the linear mixer
  of App. B with hidden 32 ("Mixer/Critic hidden dimension 32"), RMSprop lr 5e-4 (pymarl's α = 0.99,
  ε = 1e-5), batch 32 episodes, gradient clipping 10, discount 0.99, hard target copies every 100
  updates ("Parameters update interval 100").
* ``pymarl`` -- online QMIX as pymarl's defaults (Rashid et al. 2018; Samvelyan et al. 2019's code base,
  which DM² App. C uses): GRU agents with hidden 64 and one fully connected layer before the GRU, the QMIX
  mixer with embedding 32 and two-layer hypernetworks (departure: their hidden width is the embedding's, 32,
  where pymarl's is 64), RMSprop lr 5e-4, batches of 32 episodes, gradient clipping 10, hard target copies
  (every 200 episodes online: ``target_update_episodes``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


# ---- presets -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ValuePreset:
    """Architecture and optimisation of a centralized value learner (see the module docstring)."""

    agent: str
    hidden: int
    agent_layers: int
    mixer: str
    mixer_hidden: int
    hypernet_layers: int
    optimizer: str
    lr: float
    weight_decay: float
    batch_size: int
    grad_clip: float
    tau: float
    target_update_interval: int


PRESETS: dict[str, ValuePreset] = {
    "tseng": ValuePreset(agent="mlp", hidden=256, agent_layers=3, mixer="qmix", mixer_hidden=64, hypernet_layers=2,
                         optimizer="adamw", lr=1e-4, weight_decay=1e-4, batch_size=128, grad_clip=10.0,
                         tau=0.005, target_update_interval=1),
    "sit": ValuePreset(agent="gru", hidden=64, agent_layers=2, mixer="linear", mixer_hidden=32, hypernet_layers=1,
                       optimizer="rmsprop", lr=5e-4, weight_decay=0.0, batch_size=32, grad_clip=10.0,
                       tau=0.0, target_update_interval=100),
    "pymarl": ValuePreset(agent="gru", hidden=64, agent_layers=2, mixer="qmix", mixer_hidden=32, hypernet_layers=2,
                          optimizer="rmsprop", lr=5e-4, weight_decay=0.0, batch_size=32, grad_clip=10.0,
                          tau=0.0, target_update_interval=200),
}


def resolve_preset(config: Any, extras: dict[str, dict[str, Any]] | None = None) -> Any:
    """``config`` with every field that is None filled from ``PRESETS[config.preset]`` and from
    ``extras[config.preset]`` (an algorithm's own preset values, e.g. ICQ's critic lr). Fields set
    explicitly (``--set``, YAML) are kept."""
    if config.preset not in PRESETS:
        raise ValueError(f"unknown preset {config.preset!r}; known: {', '.join(PRESETS)}")
    values = {**dataclasses.asdict(PRESETS[config.preset]), **(extras or {}).get(config.preset, {})}
    fill = {k: v for k, v in values.items() if hasattr(config, k) and getattr(config, k) is None}
    return dataclasses.replace(config, **fill)


# ---- target networks ---------------------------------------------------------------------------------
def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a deep copy of ``module`` that autograd never updates."""
    import copy

    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``θ' ← τ θ + (1 − τ) θ'``."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, tau)


@torch.no_grad()
def hard_update(target: nn.Module, source: nn.Module) -> None:
    """``θ' ← θ``."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.copy_(s)


def update_target(target: nn.Module, source: nn.Module, tau: float) -> None:
    """A soft update with ``tau > 0``, else a hard copy (the caller decides when)."""
    if tau > 0:
        soft_update(target, source, tau)
    else:
        hard_update(target, source)


# ---- masked operations over actions --------------------------------------------------------------------
def mask_values(values: torch.Tensor, avail: torch.Tensor | None, fill: float = float("-inf")) -> torch.Tensor:
    """``values [..., A]`` with unavailable actions set to ``fill``."""
    return values if avail is None else values.masked_fill(~avail.bool(), fill)


def masked_max(values: torch.Tensor, avail: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(max, argmax)`` over available actions; ``[..., A] -> [...]``."""
    return mask_values(values, avail).max(dim=-1)


def masked_argmax(values: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    return mask_values(values, avail).argmax(dim=-1)


def masked_logsumexp(values: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """``log Σ_{a available} exp(values[..., a])``; ``[..., A] -> [...]``."""
    return torch.logsumexp(mask_values(values, avail), dim=-1)


def masked_log_softmax(logits: torch.Tensor, avail: torch.Tensor | None) -> torch.Tensor:
    """Log-probabilities over available actions (unavailable ones get ``-inf``)."""
    return torch.log_softmax(mask_values(logits, avail), dim=-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` over entries where ``mask`` (broadcastable) is True."""
    if mask is None:
        return values.mean()
    m = mask.to(values.dtype).expand_as(values)
    return (values * m).sum() / m.sum().clamp_min(1.0)


# ---- targets -------------------------------------------------------------------------------------------
def one_step_targets(rewards: torch.Tensor, done: torch.Tensor, v_next: torch.Tensor, gamma: float) -> torch.Tensor:
    """``y_t = r_t + γ (1 − d_t) V(s_{t+1})``."""
    return rewards + gamma * (1.0 - done) * v_next


def tree_backup_targets(rewards: torch.Tensor, done: torch.Tensor, v_next: torch.Tensor, q_next_data: torch.Tensor,
                        pi_next: torch.Tensor, gamma: float, n_step: int) -> torch.Tensor:
    """n-step Tree-Backup estimates (Precup et al. 2000; Sutton & Barto §7.5), all ``[B, L]``.

        G^(1)_t = r_t + γ (1 − d_t) V(s_{t+1})
        G^(k)_t = r_t + γ (1 − d_t) [ V(s_{t+1}) − π(a_{t+1}|s_{t+1}) Q(s_{t+1}, a_{t+1})
                                        + π(a_{t+1}|s_{t+1}) G^(k−1)_{t+1} ]

    ``v_next[t] = Σ_a π(a|s_{t+1}) Q(s_{t+1}, a)`` (the greedy policy's max), ``q_next_data[t] =
    Q(s_{t+1}, a_{t+1})`` of the dataset's next action and ``pi_next[t] = π(a_{t+1}|s_{t+1})``, which
    must be 0 where step t+1 is not in the sequence (its episode ended or the batch was cut there).
    With a greedy π the backup follows the data while the data agrees with π and bootstraps at the
    first disagreement. ``n_step = 1`` is the one-step target.
    """
    if n_step < 1:
        raise ValueError(f"tree backup needs n_step >= 1, got {n_step}")
    not_done = 1.0 - done
    g = rewards + gamma * not_done * v_next
    for _ in range(n_step - 1):
        g_next = torch.cat([g[:, 1:], torch.zeros_like(g[:, :1])], dim=1)  # G^(k-1)_{t+1}
        g = rewards + gamma * not_done * (v_next - pi_next * q_next_data + pi_next * g_next)
    return g


def lambda_return_targets(rewards: torch.Tensor, done: torch.Tensor, v_next: torch.Tensor, has_next: torch.Tensor,
                          gamma: float, lam: float) -> torch.Tensor:
    """TD(λ) returns over each sequence, ``[B, L]`` (pymarl's ``build_td_lambda_targets``):

        G_t = r_t + γ (1 − d_t) [ (1 − λ) V_{t+1} + λ G_{t+1} ]     where step t+1 is in the sequence,
        G_t = r_t + γ (1 − d_t) V_{t+1}                              where it is not (``has_next[t] = 0``).

    ``V_{t+1} = v_next[t]`` is the bootstrap value of the next step (for ICQ, the exp-weighted value of
    the dataset's next action)."""
    cont = has_next.to(rewards.dtype)
    out = torch.zeros_like(rewards)
    g_next = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):  # backward recursion in time
        blend = v_next[:, t] + lam * cont[:, t] * (g_next - v_next[:, t])
        g = rewards[:, t] + gamma * (1.0 - done[:, t]) * blend
        out[:, t] = g
        g_next = g
    return out


# ---- loss terms -----------------------------------------------------------------------------------------
def counterfactual_agent_qs(q_alt: torch.Tensor, q_data: torch.Tensor) -> torch.Tensor:
    """Joint agent-value vectors with one agent's value replaced: ``[..., n, K, n]``.

    ``out[..., i, k, :] = q_data`` with entry i set to ``q_alt[..., i, k]`` (agent i plays its k-th
    alternative action, the others their dataset actions). ``q_alt [..., n, K]``, ``q_data [..., n]``.
    Mixing ``out`` gives ``Q_tot`` for every single-agent deviation."""
    n = q_data.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=q_data.device)[:, None, :]  # [n, 1, n]
    return torch.where(eye, q_alt.unsqueeze(-1), q_data[..., None, None, :])


def cql_gap(q_tot_alt: torch.Tensor, q_tot_data: torch.Tensor, avail: torch.Tensor | None = None,
            log_mean: bool = False) -> torch.Tensor:
    """CQL's conservative term summed over agents (SIT Eq. 13 with a mixer), ``[...]``:

        Σ_i [ log Σ_{a_i} exp Q_tot(τ, (a_i, a_{−i}^data)) − Q_tot(τ, a^data) ]

    ``q_tot_alt [..., n, A]`` (discrete; the sum runs over available actions, ``avail [..., n, A]``) or
    ``[..., n, K]`` sampled actions with ``log_mean=True`` (log of the mean instead of the sum, the
    Monte-Carlo form of the continuous logsumexp: the constant ``log K`` does not change the gradient).
    """
    lse = masked_logsumexp(q_tot_alt, avail)  # [..., n]
    if log_mean:
        lse = lse - float(np.log(q_tot_alt.shape[-1]))
    return (lse - q_tot_data.unsqueeze(-1)).sum(dim=-1)


def batch_softmax_weights(x: torch.Tensor, mask: torch.Tensor | None = None, dims: tuple[int, ...] | None = None
                          ) -> torch.Tensor:
    """ICQ's ``exp(x)/Z`` with ``Z`` from the batch: ``w = N · softmax(x)`` over the valid entries of
    ``dims`` (all dims by default), so the weights average 1 over the ``N`` valid entries and are 0
    elsewhere. ``x`` is used as given (callers detach it). Computed with the max subtracted."""
    dims = tuple(range(x.dim())) if dims is None else dims
    valid = torch.ones_like(x, dtype=torch.bool) if mask is None else mask.bool().expand_as(x)
    z = x.masked_fill(~valid, float("-inf"))
    z = z - z.amax(dim=dims, keepdim=True).clamp_min(torch.finfo(x.dtype).min)  # guard all-masked slices
    e = torch.exp(z).masked_fill(~valid, 0.0)
    count = valid.sum(dim=dims, keepdim=True).to(x.dtype)
    return e * count / e.sum(dim=dims, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def bcq_allowed_actions(behavior_logits: torch.Tensor, avail: torch.Tensor | None, zeta: float) -> torch.Tensor:
    """SIT App. B's (and discrete BCQ's) filter, bool ``[..., A]``: action a is allowed iff it is available
    and ``μ(a|τ) / max_a' μ(a'|τ) > ζ``; ratios ``≤ ζ`` are "unfamiliar" and masked from the max. The
    most likely available action is always allowed."""
    probs = torch.softmax(mask_values(behavior_logits, avail), dim=-1)
    ratio = probs / probs.amax(dim=-1, keepdim=True)
    allowed = ratio > zeta
    return allowed if avail is None else allowed & avail.bool()


def expected_next_value(q_sa: torch.Tensor, rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """MABCQ §3.3: ``E_{s'} V(s') = (Q̂(s, a) − r) / γ``, estimated from one sample without visiting all s'."""
    return (q_sa - rewards) / gamma


def value_deviation(v_next: torch.Tensor, expected_v: torch.Tensor, epsilon: float,
                    done: torch.Tensor | None = None) -> torch.Tensor:
    """MABCQ's λ_vd = 1 + (V(s') − E V) / |E V|, clipped to [1 − ε, 1 + ε] (§3.2.1, §3.3).

    ``epsilon = inf`` disables the clipping (the paper's matrix game). ``|E V|`` is floored at 1e-8. A
    terminal transition (``done = 1``) gets λ_vd = 1: its next value is 0 by definition and E V ≈ 0
    there, so the ratio is 0/0 -- there is no other next state to shift probability to."""
    lam = 1.0 + (v_next - expected_v) / expected_v.abs().clamp_min(1e-8)
    if np.isfinite(epsilon):
        lam = lam.clamp(1.0 - epsilon, 1.0 + epsilon)
    if done is not None:
        lam = torch.where(done.bool(), torch.ones_like(lam), lam)
    return lam


def transition_normalization_from_latents(mu1: torch.Tensor, mu2: torch.Tensor) -> torch.Tensor:
    """MABCQ §3.3: ``λ_tn = ρ_N(0,I)(μ¹) / ρ_N(0,I)(μ²) = exp(½ (|μ²|² − |μ¹|²))`` from the latent means
    of ``G¹(s, a)`` (``μ¹ [..., z]``) and ``G²(s, a, s')`` (``μ² [..., z]``)."""
    return torch.exp(0.5 * (mu2.pow(2).sum(dim=-1) - mu1.pow(2).sum(dim=-1)))


def transition_normalization_from_counts(states: np.ndarray, actions: np.ndarray, next_states: np.ndarray
                                         ) -> np.ndarray:
    """MABCQ §3.2.2 with counts: ``λ_tn = 1 / P_B(s'|s, a) = num(s, a) / num(s, a, s')`` per transition.

    ``states``/``next_states [T, d]`` (discrete: rows compared exactly), ``actions [T]`` int. Returns
    ``[T]`` float32."""
    rows = np.concatenate([states, next_states]).reshape(2 * len(states), -1)
    _, ids = np.unique(rows, axis=0, return_inverse=True)
    ids = ids.reshape(-1)
    s, s_next = ids[: len(states)], ids[len(states):]
    _, sa = np.unique(np.stack([s, actions.astype(np.int64)], axis=1), axis=0, return_inverse=True)
    _, sas = np.unique(np.stack([s, actions.astype(np.int64), s_next], axis=1), axis=0, return_inverse=True)
    sa, sas = sa.reshape(-1), sas.reshape(-1)
    return (np.bincount(sa)[sa] / np.bincount(sas)[sas]).astype(np.float32)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                 self_normalize: bool = True) -> torch.Tensor:
    """``Σ w (pred − target)² / Σ w`` (self-normalised importance weights) or ``mean(w (pred − target)²)``."""
    sq = weights * (pred - target).pow(2)
    return sq.sum() / weights.sum().clamp_min(1e-8) if self_normalize else sq.mean()
