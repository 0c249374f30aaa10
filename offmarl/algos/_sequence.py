"""Shared pieces of the Decision-Transformer algorithms (``idt``, ``madt``, ``teacher``, ``distill``).

* :class:`DTConfig` -- the config fields every DT has (defaults: Tseng et al. Tables 4, 6, 10, batch 128
  from Tables 7-9; kzl's decision-transformer for what the paper does not state).
* :func:`masked_mean`, :func:`action_loss` -- per-agent losses over real (unpadded) positions only.
* :class:`DTAlgorithm` -- the algorithm skeleton: dataset statistics (observation standardisation,
  return-to-go scale, default target returns) fitted in ``make_sampler``/``on_fit_start`` and kept in the
  state, AdamW with kzl's linear warm-up over the stage's steps and gradient clipping per agent network
  (:class:`~offmarl.core.optim.OptimizerWrapper`), one update = one action-loss step, policies with context.

Steps: the paper counts "offline epochs" (Tables 4, 6, 10: 1000 Fill-In, 500 Equal Space, 1000
Grid-World). offmarl counts gradient steps; ``offmarl/algos/env_defaults/<algo>.yaml`` converts with one
epoch = one pass over the dataset's windows = ⌈T / batch_size⌉ steps (T = steps in the recipe dataset at
scale 1), see those files for the arithmetic. ``--scale`` multiplies the result for CPU runs.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

from offmarl.algos.base import AlgoConfig, Algorithm
from offmarl.core.optim import OptimizerWrapper
from offmarl.core.seeding import derive_seed, draw_seed, torch_seeded
from offmarl.data.dataset import MultiAgentDataset
from offmarl.data.samplers import WindowSampler
from offmarl.envs.base import EnvSpec
from offmarl.nets.action_head import ActionHead
from offmarl.nets.decision_transformer import DecisionTransformer, DTOutput, DTSpec


@dataclasses.dataclass(frozen=True)
class DTConfig(AlgoConfig):
    """Fields common to every Decision-Transformer algorithm.

    steps: gradient steps (100,000 = kzl's 10 iterations x 10,000; per-env values from the paper's epochs
        in ``env_defaults``).
    batch_size: K-step windows per update, 128 (Tseng Tables 7-9).
    lr: AdamW learning rate, 1e-4 (Tables 4, 6, 10).
    weight_decay: AdamW weight decay, 1e-4 (Tables 4, 6, 10).
    context_len: K, steps per window / evaluation context. Not stated in the paper; kzl's default 20.
    hidden, n_layers, n_heads, dropout, activation: the GPT-2 backbone; kzl's 128, 3, 1, 0.1, relu
        (MADT: 2 layers, App. B.3).
    feature_dim: hidden width of the action head = the distilled feature size (teacher and students);
        0 = kzl's single linear head (IDT/MADT only).
    warmup_frac: linear learning-rate warm-up over this fraction of ``steps`` (kzl: 10,000 of 100,000).
    grad_clip: gradient-norm clip, 0.25 (kzl), applied per agent network.
    reward_scale: returns-to-go are multiplied by it; 0 = automatic, agent i's 1 / max |episode return of
        agent i| in the dataset, so nothing of the other agents' rewards reaches agent i (kzl uses a fixed
        1/1000 for MuJoCo returns).
    target_return: per-agent return to condition on at evaluation (unscaled); empty = each agent's
        maximum episode return in the dataset; one value = the same for every agent.
    target_check: at the end of training, also evaluate the policy at the three named targets of
        :func:`named_targets` (``max``, ``best_joint``, ``mean``) and log ``return_at_<name>`` in the last
        ``metrics.csv`` row (needs an evaluation env; not in the paper: a diagnostic of the conditioning).
    """

    steps: int = 100_000
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 1e-4
    context_len: int = 20
    hidden: int = 128
    n_layers: int = 3
    n_heads: int = 1
    dropout: float = 0.1
    activation: str = "relu"
    feature_dim: int = 128
    warmup_frac: float = 0.1
    grad_clip: float = 0.25
    reward_scale: float = 0.0
    target_return: tuple[float, ...] = ()
    target_check: bool = False


# ---- losses ------------------------------------------------------------------------------------------
def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values [m, B, K]`` over the positions where ``mask [B, K]`` is True -> ``[m]``.

    Padded positions are excluded with ``torch.where`` (not a product), so even NaN/inf at a pad cannot
    reach the result or its gradient."""
    keep = mask.unsqueeze(0)
    total = torch.where(keep, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum(dim=(1, 2))
    return total / mask.sum().clamp(min=1)


def full_precision(device: torch.device) -> torch.autocast:
    """Leave bf16 autocast for a loss: its math (arccos near ±1, log-softmax, cross-entropy) runs in fp32."""
    return torch.autocast(device.type, enabled=False)


def agent_major(x: torch.Tensor) -> torch.Tensor:
    """Batch tensor ``[B, K, m, *]`` -> ``[m, B, K, *]``."""
    return x.movedim(2, 0)


def action_loss(head: ActionHead, pred: torch.Tensor, batch: dict[str, torch.Tensor],
                targets: torch.Tensor | None = None) -> torch.Tensor:
    """Per-agent action loss ``[m]`` of predictions ``pred [m, B, K, A or act_dim]`` (raw outputs).

    Discrete: cross-entropy with unavailable actions (``batch["avail"]``) masked; continuous: squared
    error averaged over action dimensions (kzl). Averaged over real positions (``batch["mask"]``) only; in
    fp32 under bf16 autocast.
    ``targets`` (``[m, B, K]`` / ``[m, B, K, act_dim]``) replaces the dataset actions (teacher targets).
    """
    if targets is None:
        targets = agent_major(batch["actions"])
    avail = agent_major(batch["avail"]) if "avail" in batch and head.discrete else None
    with full_precision(pred.device):
        return masked_mean(head.loss(pred.float(), targets, avail), batch["mask"])


def named_targets(dataset: MultiAgentDataset) -> dict[str, np.ndarray]:
    """Per-agent target returns ``[n]`` (unscaled) a return-conditioned policy can be evaluated at:

    ``max``         each agent's maximum episode return (the default target; different agents' maxima may
                    come from different episodes, so the joint target may lie outside the data),
    ``best_joint``  the per-agent returns of the episode with the highest team return (a joint outcome the
                    data holds),
    ``mean``        each agent's mean episode return.
    """
    returns = dataset.episode_returns()  # [E, n]
    return {"max": returns.max(axis=0), "best_joint": returns[int(np.argmax(returns.sum(axis=1)))],
            "mean": returns.mean(axis=0)}


def relabel_rtg(batch: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """The windows' returns-to-go ``[B, K, n]`` as an evaluation conditioned on ``target`` ``[n]`` (scaled)
    would have read them: ``target - (return collected before the step) = rtg + target - episode_rtg`` at
    real steps (pads stay 0). A window of the episode with return ``target`` is left unchanged."""
    relabelled = batch["rtg"] + target.to(batch["rtg"].dtype) - batch["episode_rtg"]
    return torch.where(batch["mask"].unsqueeze(-1), relabelled, 0.0)


def dt_spec(spec: EnvSpec, config: DTConfig, layout: str) -> DTSpec:
    """The network sizes of a DT with ``layout`` for env ``spec`` under ``config``."""
    return DTSpec(layout=layout, n_agents=spec.n_agents, obs_dim=spec.obs_dim, discrete=spec.discrete,
                  n_actions=spec.n_actions if spec.discrete else 0, act_dim=0 if spec.discrete else spec.act_dim,
                  hidden=config.hidden, n_layers=config.n_layers, n_heads=config.n_heads, dropout=config.dropout,
                  activation=config.activation, feature_dim=config.feature_dim, max_timestep=spec.episode_limit + 1)


class DTStats:
    """Dataset statistics a DT needs at evaluation, fitted once and carried in the state.

    ``target_return [n]`` (default evaluation target: each agent's maximum episode return),
    ``reward_scale [n]`` (each agent's return-to-go multiplier), observation mean/std ``[n, obs_dim]`` (stored in the
    networks' buffers by the caller). Agent i's entries come from agent i's data only."""

    def __init__(self, n_agents: int):
        self.target_return = np.zeros(n_agents)
        self.reward_scale = np.ones(n_agents)
        self.fitted = False

    def fit(self, dataset: MultiAgentDataset, reward_scale: float) -> tuple[np.ndarray, np.ndarray]:
        returns = dataset.episode_returns()  # [E, n]
        self.target_return = returns.max(axis=0)
        biggest = np.abs(returns).max(axis=0)  # [n]
        automatic = np.divide(1.0, biggest, out=np.ones_like(biggest), where=biggest > 0)
        self.reward_scale = np.full(returns.shape[1], float(reward_scale)) if reward_scale > 0 else automatic
        self.fitted = True
        obs = dataset.obs.astype(np.float64)  # [T, n, d]
        return obs.mean(axis=0), obs.std(axis=0)

    def resolve_target(self, override: float | np.ndarray | list | tuple | None,
                       config_target: tuple[float, ...]) -> np.ndarray:
        """Per-agent target ``[n]``: the override, else the config's, else the dataset maxima."""
        n = self.target_return.shape[0]
        value = override if override is not None else (config_target if len(config_target) else self.target_return)
        target = (np.broadcast_to(np.asarray(value, dtype=np.float64).reshape(-1), (n,))
                  if np.size(value) in (1, n) else None)
        if target is None:
            raise ValueError(f"target_return needs 1 or {n} values (one per agent), got {np.asarray(value).tolist()}")
        return target.copy()

    def state_dict(self) -> dict[str, Any]:
        return {"target_return": torch.as_tensor(self.target_return, dtype=torch.float64),
                "reward_scale": torch.as_tensor(self.reward_scale, dtype=torch.float64), "fitted": self.fitted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.target_return = state["target_return"].numpy().astype(np.float64)
        n = self.target_return.shape[0]  # a model saved with one scale for all agents loads as that scale for each
        self.reward_scale = np.broadcast_to(np.asarray(state["reward_scale"], dtype=np.float64), (n,)).copy()
        self.fitted = bool(state["fitted"])


# ---- the algorithm skeleton ------------------------------------------------------------------------
class DTAlgorithm(Algorithm):
    """A Decision Transformer trained by action prediction on K-step windows (subclasses set ``layout``).

    update: ``L = sum_i L_action^i`` for one network per agent (``per_agent``: each agent's gradient is
    its own loss's), else the mean over agents; AdamW, warm-up, gradient clipping per agent network.

    Initial weights: the algorithm draws one number from the (seeded) global generator, ``init_seed``, and
    builds its network on torch's generator seeded with ``derive_seed(init_seed, model_seed_key)``. IDT's and
    MADT's network and distill's students share the key ``"students"``, the teacher (standalone or inside
    distill) has ``"teacher"``: at one seed, distill's students start from IDT's weights (or, shared, from
    MADT's) and its teacher from the standalone teacher's, whatever else distill builds.
    """

    Config = DTConfig
    layout: ClassVar[str] = "per_agent"
    model_seed_key: ClassVar[str] = "students"
    contract_overrides = {"hidden": 16, "n_layers": 1, "n_heads": 2, "feature_dim": 8, "context_len": 4,
                          "batch_size": 8, "lr": 1e-3}

    def __init__(self, spec: EnvSpec, config: DTConfig, device: str | torch.device = "cpu"):
        super().__init__(spec, config, device)
        check_dt_config(config)
        self.head = ActionHead.for_spec(spec).to(self.device)
        self.init_seed = draw_seed()
        with torch_seeded(derive_seed(self.init_seed, self.model_seed_key)):
            self.model = DecisionTransformer(dt_spec(spec, config, self.model_layout(config))).to(self.device)
        self.optimizer = self.adamw(self.model, per_member=self.model.spec.members > 1)
        self.stats = DTStats(spec.n_agents)
        self.updates = 0

    def model_layout(self, config: DTConfig) -> str:
        """The input layout of the network (:mod:`offmarl.nets.decision_transformer`): the class's ``layout``."""
        return self.layout

    # ---- data -----------------------------------------------------------------------------------
    def fit_dataset(self, dataset: MultiAgentDataset) -> None:
        """Fit the dataset statistics (idempotent: the same dataset gives the same values)."""
        mean, std = self.stats.fit(dataset, self.config.reward_scale)
        for model in self._models_with_obs_stats():
            model.set_obs_stats(torch.as_tensor(mean), torch.as_tensor(std))
        self.dataset = dataset  # for the checks at a stage's end (not part of the state)

    def _models_with_obs_stats(self) -> list[DecisionTransformer]:
        return [self.model]

    def make_sampler(self, dataset: MultiAgentDataset, seed: int) -> WindowSampler:
        self.fit_dataset(dataset)
        return WindowSampler(dataset, self.config.batch_size, seed, K=self.config.context_len,
                             reward_scale=self.stats.reward_scale)

    def on_fit_start(self, dataset: MultiAgentDataset) -> None:
        self.fit_dataset(dataset)

    # ---- training -------------------------------------------------------------------------------
    def forward(self, model: DecisionTransformer, batch: dict[str, torch.Tensor]) -> DTOutput:
        """Run ``model`` on a sampler batch (all agents)."""
        return model(batch["rtg"], batch["obs"], batch["actions"], batch["timesteps"], batch["mask"])

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def adamw(self, module: torch.nn.Module, per_member: bool = False) -> OptimizerWrapper:
        """AdamW over ``module`` with the config's rate, decay and gradient clip (per member: one per agent)."""
        c = self.config
        return OptimizerWrapper(module.parameters(), "adamw", c.lr, c.weight_decay, c.grad_clip, per_member)

    def warmup_steps(self, stage_steps: int) -> int:
        """kzl's warm-up length for a stage of ``stage_steps`` updates: ``warmup_frac`` of them."""
        return int(self.config.warmup_frac * stage_steps)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        batch = self.to_device(batch)
        self.model.train()
        per_agent = action_loss(self.head, self.forward(self.model, batch).action, batch)  # [n]
        loss = per_agent.sum() if self.model.spec.members > 1 else per_agent.mean()
        self.optimizer.minimize(loss, self.updates, self.warmup_steps(self.total_steps))
        self.updates += 1
        return {"loss": float(per_agent.detach().mean())}

    def agent_parameters(self, agent: int) -> list[torch.Tensor]:
        """Agent ``agent``'s slices of a per-agent model's stacked weights (every weight has the member axis)."""
        members = self.model.spec.members
        if members == 1:
            return super().agent_parameters(agent)
        params = list(self.model.parameters())
        assert all(p.shape[0] == members for p in params), "a per-agent model shares a weight between agents"
        return [p[agent] for p in params]

    def check_batches(self, batches: int, key: str) -> list[dict[str, torch.Tensor]]:
        """``batches`` batches of the fitted dataset drawn with a seed of their own (``derive_seed(init_seed,
        key)``): the same windows every time, and the training sampler's stream untouched."""
        sampler = WindowSampler(self.dataset, self.config.batch_size, derive_seed(self.init_seed, key),
                                K=self.config.context_len, reward_scale=self.stats.reward_scale)
        return [self.to_device(sampler.sample()) for _ in range(batches)]

    def stage_check(self, name: str, evaluate: Any) -> dict[str, float]:
        """``target_check``: at the end of the last stage, the return at each of :func:`named_targets`."""
        if not self.config.target_check or evaluate is None or name != self.schedule.names[-1]:
            return {}
        return {f"return_at_{key}": float(evaluate(self.policies(target))["return_mean"])
                for key, target in named_targets(self.dataset).items()}

    # ---- evaluation -----------------------------------------------------------------------------
    def target_returns(self, target_return: float | np.ndarray | None = None) -> np.ndarray:
        return self.stats.resolve_target(target_return, tuple(self.config.target_return))

    def policies(self, target_return: float | np.ndarray | None = None):
        """Greedy DT policies on a frozen copy of the network (decentralized unless ``layout='joint'``)."""
        from offmarl.policies.dt import dt_policies

        return dt_policies(copy.deepcopy(self.model).eval(), self.head, self.target_returns(target_return),
                           self.stats.reward_scale, self.config.context_len)

    # ---- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "updates": self.updates, "stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self.stats.load_state_dict(state["stats"])


def check_dt_config(config: DTConfig) -> None:
    """Reject configs a DT cannot run with, naming the field."""
    positive = ("batch_size", "context_len", "hidden", "n_layers", "n_heads")
    for name in positive:
        if getattr(config, name) < 1:
            raise ValueError(f"config {name} must be >= 1, got {getattr(config, name)}")
    if config.feature_dim < 0:
        raise ValueError(f"config feature_dim must be >= 0 (0 = linear action head), got {config.feature_dim}")
    if config.hidden % config.n_heads:
        raise ValueError(f"config hidden ({config.hidden}) must be divisible by n_heads ({config.n_heads})")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"config dropout must lie in [0, 1), got {config.dropout}")
    if not 0.0 <= config.warmup_frac <= 1.0:
        raise ValueError(f"config warmup_frac must lie in [0, 1], got {config.warmup_frac}")
    if config.reward_scale < 0:
        raise ValueError(f"config reward_scale must be >= 0 (0 = automatic), got {config.reward_scale}")
