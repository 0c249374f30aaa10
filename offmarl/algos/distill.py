"""Teacher→student Decision-Transformer distillation with structural relations (``distill``).

Reference: Tseng et al., *Offline Multi-Agent RL with Knowledge Distillation*, §3.2, Eq. 1-4 and
Algorithm 1; hyperparameters App. B.7 Table 10 and the
Huber/MSE comparison App. F.1 Table 13. The "Ours" rows of Tables 1-3.

Stage 1 ("teacher", ``teacher_fraction`` of the step budget): train the centralized DT teacher
(:mod:`offmarl.algos.teacher`) on all agents' concatenated (R̂, o, a). Then freeze it; the fit loop saves
it as the stage's artifact ``<run>/teacher/`` (``algo.json`` + ``algo.pt``, loadable with ``load_algo`` /
``offmarl eval``) and checkpoints the hand-over.

Stage 2 ("student", the rest of the budget): one student DT per agent (separate weights; student i
reads only agent i's (R̂^i, o^i, a^i), so execution is decentralized), trained with, for agent i,

    L^i = L_action^i + α L_rel^i + β L_KL^i                                             (Eq. 4)

* L_action^i: cross-entropy with the dataset action a_t^i (MSE for continuous actions); with
  ``action_target="teacher"`` the frozen teacher's greedy action instead.
* L_KL^i = KL(π_teacher(·|…)^i ∥ π^i(·|…)) over agent i's actions (Eq. 1), unavailable actions masked.
  Continuous actions: both policies are read as Gaussians with the same fixed standard deviation
  σ = ``kl_std`` around their (squashed) actions, so KL = ||μ_T − μ_S||² / (2σ²). Departure: the paper
  does not say how its KL treats continuous actions (its DTs output deterministic actions).
* L_rel^i = Σ_{j≠i} H(θ̄_ij, θ̂_ij) with θ̂_ij = ∠(M f̂^i, M f̂^j) and θ̄_ij = ∠(N f̄^i, N f̄^j) (Eq. 3 with
  the mapping networks): f̂^i is the hidden layer of the teacher's agent-i head, f̄^i that of student
  i's head (same width f), H the Huber loss with δ = 1 (App. F.1); see :func:`relation_loss`. Only real
  (unpadded) steps of the windows enter, each step a "batch" element over which the n agents are
  related. M (teacher side) and N (student side) are separate MLPs ``f → f → f`` (ReLU), one M and one
  N shared by all agents.
* Momentum-like update (§3.2, "Mapping Networks"): N steps with every update, M only every e-th
  (``mapping_period``; Table 10: e = 5 on the non-SMAC tasks) using that update's gradient; the
  gradients of the other updates are discarded.
* ``mapping_update`` (beyond the paper's wording, which only asks for a "momentum-like" update of M):
  ``periodic`` (the paper's reading above, the default), ``frozen`` (M keeps its initial weights: the
  teacher-side angles θ̂ are then a fixed function of the frozen teacher's features and cannot shrink) or
  ``ema`` (M starts as a copy of N and follows it as an exponential moving average,
  M ← m M + (1 − m) N after every update, as the key encoder of the momentum-contrast methods the paper
  cites; M gets no gradient). Distinct from the ``no_momentum`` ablation (periodic with e = 1). Measured
  (results/FINDINGS.md, "Relations that mean something"; Fill-In, tseng-table1's sizes, terms summed, 3
  seeds): under ``periodic`` M and N co-minimise L_rel by shrinking every mapped angle (0.8 → 0.2 rad, spread
  0.12 → 0.02, while the raw features' stay ~1.26); ``ema`` follows N into nearly the same collapse (0.3);
  only ``frozen`` keeps the teacher's relations (0.8). The default stays the paper's ``periodic`` because no
  alternative returned more: frozen −3.7 and ema −1.0 below it, paired by seed, 0 of 3 seeds above --
  with a teacher at random level its relations are noise, and a live L_rel pulls the students towards it.
* Logged every student update (not part of any loss): the mean and standard deviation over (position,
  pair i≠j) of the angles between agents' features, raw and mapped, on both sides: ``angle_teacher`` /
  ``angle_student`` (raw f̂, f̄), ``angle_teacher_mapped`` / ``angle_student_mapped`` (M f̂, N f̄, what L_rel
  compares) and their ``_std``.
* Following Algorithm 1 each student is updated by its own L^i only: the update minimises Σ_i L^i, in
  L_rel^i the other students' mapped features are detached, and the students' gradients are clipped
  per agent (an elementwise AdamW over the stacked students then equals n separate optimizers). N and M
  receive Σ_i of their gradients. The teacher is frozen (no gradient, evaluation mode).

Options beyond the paper (each a config field, default = the paper's method):

* ``student_sharing``: the students are ONE network shared by the agents with the agent's one-hot id
  appended to its observation (MADT's layout, :mod:`offmarl.algos.madt`; a learned agent-id embedding added
  to the observation token); execution stays decentralized (each agent runs it on its own history). The
  update then minimises the mean over agents (1/n) Σ_i L^i, MADT's loss, so with α = β = 0 a student
  update is exactly MADT's. It separates what distillation adds on top of parameter sharing.
* ``teacher_layout: agent_tokens``: one token per agent per step with agent-id embeddings
  (:mod:`offmarl.algos.teacher`), so that teacher feature f̂^i is read off agent i's own token.
* ``teacher_rtg: target``: during distillation the teacher reads its windows' returns-to-go relabelled to
  the evaluation target, ``R̂_t = target − (return collected before t)`` (:func:`~offmarl.algos._sequence.
  relabel_rtg`): what it would predict for the dataset's situations when asked for the best return, rather
  than the behaviour the window's own outcome implies. On agent-wise imbalanced data this is how a
  centralized teacher could hand the students the good agents' behaviour.
* The teacher check (``teacher_check``, on by default; it never changes training): when the teacher stage
  ends, :meth:`offmarl.algos.teacher.Teacher.diagnose` is logged in that step's metrics.csv row with the
  prefix ``teacher_`` (its cross-entropy with and without the other agents' returns-to-go, its entropy,
  how often its greedy action follows the target, and, with an evaluation env, its return at the
  per-agent-max, best-joint and mean targets and in hindsight), before any student trains.

Initial weights (:class:`~offmarl.algos._sequence.DTAlgorithm`): the teacher, the students and the mapping
networks are each built from a seed derived from one draw of the seeded global generator (keys
``"teacher"``, ``"students"``, ``"mapping"``), so at one seed distill's students start from IDT's weights
(with ``student_sharing``, MADT's) and its teacher from the standalone teacher's, whatever options change the
other networks. distill − IDT at one seed is then a paired comparison.

``policies()`` are the students' decentralized policies (untrained while the teacher stage runs; the
teacher itself is the artifact's joint policy).

The teacher's predictions are taken on the dataset's windows (teacher forcing), as in its own training.
Departure: Algorithm 1 writes the teacher's input actions as its own predictions â_{<t}; read literally
that is an autoregressive rollout of the teacher on the dataset's observations, which the main text does
not describe. The students' action loss uses the dataset actions: it is §3.1's L_action, which Eq. 4 reuses.

Ablations (``--ablation NAME``; Table 3 rows and Table 13):
    conventional      "Ours (conventional distillation)": action + KL only (α = 0)
    shared_mapping    "Ours (M = N)": one mapping network for teacher and students, stepped every update
    no_momentum       "Ours - Momentum Update": M stepped every update (e = 1)
    no_mapping        "Ours - Mapping Network": M and N are the identity
    no_kl             "Ours - KL Distillation": β = 0
    no_kl_no_mapping  "Ours - KL Distillation - Mapping Network": β = 0 and identity maps
    rel_mse           Table 13 "Ours (MSE)": squared error instead of the Huber loss in L_rel
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from offmarl.algos._sequence import (
    DTAlgorithm,
    DTConfig,
    action_loss,
    agent_major,
    check_dt_config,
    full_precision,
    masked_mean,
    relabel_rtg,
)
from offmarl.algos.base import register_algo
from offmarl.algos.teacher import Teacher
from offmarl.core.optim import OptimizerWrapper
from offmarl.core.seeding import derive_seed, torch_seeded
from offmarl.data.dataset import MultiAgentDataset
from offmarl.envs.base import EnvSpec
from offmarl.nets.action_head import ActionHead, mask_logits
from offmarl.nets.decision_transformer import CENTRALIZED_LAYOUTS
from offmarl.nets.mlp import MLP

COS_EPS = 1e-6  # cosines are clamped to [-1 + eps, 1 - eps]: arccos has an infinite slope at ±1

ABLATIONS: dict[str, dict[str, Any]] = {
    "conventional": {"alpha": 0.0},
    "shared_mapping": {"mapping": "shared"},
    "no_momentum": {"mapping_period": 1},
    "no_mapping": {"mapping": "identity"},
    "no_kl": {"beta": 0.0},
    "no_kl_no_mapping": {"beta": 0.0, "mapping": "identity"},
    "rel_mse": {"rel_loss": "mse"},
}


@dataclasses.dataclass(frozen=True)
class Config(DTConfig):
    """Distillation: the DT fields (the students'; the teacher's too unless ``teacher_hidden`` /
    ``teacher_layers`` say otherwise) plus Eq. 4's.

    steps: updates of both stages together (``total_steps``); the teacher gets
        ``teacher_steps = round(steps * teacher_fraction)``, the students the rest. Per-env defaults from
        Table 10's epochs (500 Equal Space, 1000 Fill-In / Grid-World, per stage) are in
        ``env_defaults/distill.yaml``.
    teacher_fraction: share of ``steps`` spent on the teacher (0.5: the paper trains both stages for the
        same number of epochs).
    alpha: α, weight of L_rel (Table 10: 0.01 everywhere).
    beta: β, weight of L_KL (Table 10: 0.001 Fill-In and Highway, 0.002 Equal Space and Grid-World,
        0.0001 SMAC; per env in ``env_defaults/distill.yaml``).
    mapping_period: e, N updates per M update (Table 10: 5; 4 on SMAC; the main text found 4 fastest).
    mapping: ``separate`` (M ≠ N, the method), ``shared`` (M = N) or ``identity`` (no mapping networks).
    mapping_layers: linear layers of M and N (2: f → f → f; the paper says "simple MLPs").
    rel_loss: ``huber`` (δ = 1, Eq. 3) or ``mse`` (Table 13).
    kl_std: σ of the fixed-variance Gaussians of the continuous-action KL (module docstring).
    action_target: ``dataset`` (the dataset's actions) or ``teacher`` (the teacher's greedy actions).
    distill_reduction: how L_rel and L_KL are reduced over the batch's real (window, step) positions before
        α and β weigh them: ``mean`` (as L_action) or ``sum``. Eq. 4 does not say. Measured on tseng-table1's
        trained runs (results/FINDINGS.md), under ``mean`` the paper's α = 0.01, β ≤ 0.002 leave the two terms'
        gradients at 1e-5 … 1e-3 of L_action's -- distill then trains as IDT -- while the paper's ablations
        find each term matters; under ``sum`` (x the P real positions: 2560 for batch 128, K = 20) they
        weigh in. L_action is a mean either way. The default stays ``mean``: with the terms summed the
        students return no more (Fill-In, paired by seed: sum − mean −2.0 [−11.6, +7.6]; sum − IDT from the
        same initial weights −0.7 [−2.1, +0.8]; results/FINDINGS.md, "Fair comparisons").
    teacher_hidden, teacher_layers: the teacher transformer's width and depth; 0 = the students' ``hidden``
        / ``n_layers`` (the paper gives one size for every DT). Not in the paper: a knob to study teacher
        capacity. The feature size ``feature_dim`` is shared either way, so M = N stays possible.
    student_sharing: False (the paper: one student network per agent) or True (beyond the paper: one
        network shared by the students with a one-hot agent id, MADT's layout, and the mean over agents of
        L^i as the loss; module docstring). Default False: shared students with the terms summed return as
        MADT does (−0.8 [−14.3, +12.8], paired by seed on Fill-In): sharing, not distillation, is what lifts
        them, and the paper's method is per-agent students.
    teacher_layout: ``joint`` (the paper, §3.2) or ``agent_tokens`` (beyond the paper: one token per agent
        per step with agent-id embeddings, :mod:`offmarl.algos.teacher`). Default ``joint``: on Fill-In both
        teachers act at random level; agent tokens read the conditioning 3-4x as often and their students
        gain +1.8 [−1.9, +5.5] over the joint teacher's (paired, terms summed) -- not enough evidence to
        leave the paper's layout (results/FINDINGS.md, "A teacher worth distilling").
    mapping_update: how M moves: ``periodic`` (the paper's momentum-like update: M stepped with every e-th
        update's gradient), ``frozen`` (M fixed at its initial weights) or ``ema`` (M ← m M + (1 − m) N
        after every update, M initialised as N; beyond the paper). ``frozen`` and ``ema`` need
        ``mapping: separate``.
    mapping_momentum: m of ``ema`` (0.99: a horizon of ~100 updates, for student stages of a few thousand
        updates; MoCo uses 0.999 over hundreds of thousands).
    teacher_rtg: the teacher's returns-to-go during distillation: ``dataset`` (the windows' own, the paper)
        or ``target`` (relabelled to the evaluation target; beyond the paper, module docstring). Default
        ``dataset``: on agent-wise imbalanced data relabelling moved the students as the teacher's own return
        at the target predicts -- +0.14 on Grid-World, −0.53 on Fill-In, −0.12 on Equal Space, paired by seed
        (results/FINDINGS.md, "Data with something to recombine").
    teacher_check: run the teacher check when the teacher stage ends (module docstring; diagnostics only).
    """

    teacher_fraction: float = 0.5
    alpha: float = 0.01
    beta: float = 0.001
    mapping_period: int = 5
    mapping: str = "separate"
    mapping_layers: int = 2
    rel_loss: str = "huber"
    kl_std: float = 1.0
    action_target: str = "dataset"
    distill_reduction: str = "mean"
    teacher_hidden: int = 0
    teacher_layers: int = 0
    student_sharing: bool = False
    teacher_layout: str = "joint"
    mapping_update: str = "periodic"
    mapping_momentum: float = 0.99
    teacher_rtg: str = "dataset"
    teacher_check: bool = True


# ---- losses ------------------------------------------------------------------------------------------
def _angles(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angles between ``a [B, n, d]`` row i and ``b [B, n, d]`` row j -> ``[B, n, n]`` (radians)."""
    cos = torch.einsum("bid,bjd->bij", F.normalize(a, dim=-1), F.normalize(b, dim=-1))
    return torch.arccos(cos.clamp(-1.0 + COS_EPS, 1.0 - COS_EPS))


def relation_loss(teacher_feats: torch.Tensor, student_feats: torch.Tensor, kind: str = "huber") -> torch.Tensor:
    """Structural-relation loss of Tseng et al. Eq. 3, per agent: ``[n]``.

    ``teacher_feats``, ``student_feats``: ``[B, n, d]`` (already mapped by M / N; only valid, unpadded
    positions). With θ_ij = arccos(cos(x_i, x_j)) (cosine clamped to [-1 + 1e-6, 1 - 1e-6] for a finite
    gradient; computed in fp32 even under bf16 autocast), entry i is the batch mean of

        Σ_{j≠i} loss(θ̄_ij, θ̂_ij),   loss = Huber (δ = 1, ``torch.nn.functional.huber_loss``) | squared error

    with θ̂ from the teacher's features and θ̄ from the students'. Entry i's gradient reaches student i's
    features only: student j's features enter θ̄_ij detached. The teacher side is not detached (M is
    trained through it).
    """
    if teacher_feats.shape != student_feats.shape or teacher_feats.dim() != 3:
        raise ValueError(f"relation_loss needs two [B, n, d] tensors of one shape, got {list(teacher_feats.shape)} "
                         f"and {list(student_feats.shape)}")
    if kind not in ("huber", "mse"):
        raise ValueError(f"relation_loss kind must be 'huber' or 'mse', got {kind!r}")
    with full_precision(teacher_feats.device):  # in bf16, 1 - 1e-6 rounds to 1 and arccos' slope is infinite
        t, s = teacher_feats.float(), student_feats.float()
        theta_t = _angles(t, t)  # [B, n, n]
        theta_s = _angles(s, s.detach())  # row i carries gradient to s_i only
        if kind == "huber":
            per_pair = F.huber_loss(theta_s, theta_t, reduction="none", delta=1.0)
        else:
            per_pair = (theta_s - theta_t).pow(2)
        n = t.shape[1]
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=t.device)
        return torch.where(off_diagonal, per_pair, 0.0).sum(dim=-1).mean(dim=0)


def kl_loss(head: ActionHead, teacher_out: torch.Tensor, student_out: torch.Tensor, batch: dict[str, torch.Tensor],
            kl_std: float = 1.0) -> torch.Tensor:
    """Per-agent KL(teacher ∥ student) ``[n]`` over real positions (Eq. 1).

    Discrete: ``Σ_a p_T(a) (log p_T(a) − log p_S(a))`` over the available actions (both distributions are
    softmaxes of logits with unavailable actions masked). Continuous: fixed-variance Gaussians around the
    squashed actions, ``||μ_T − μ_S||² / (2 kl_std²)``. Outputs are ``[n, B, K, *]`` raw head outputs.
    """
    with full_precision(student_out.device):
        if head.discrete:
            avail = agent_major(batch["avail"]) if "avail" in batch else None
            log_t = torch.log_softmax(mask_logits(teacher_out.float(), avail), dim=-1)
            log_s = torch.log_softmax(mask_logits(student_out.float(), avail), dim=-1)
            terms = log_t.exp() * (log_t - log_s)
            if avail is not None:
                terms = torch.where(avail, terms, 0.0)
            per_step = terms.sum(dim=-1)
        else:
            diff = head.squash(teacher_out.float()) - head.squash(student_out.float())
            per_step = diff.pow(2).sum(dim=-1) / (2.0 * kl_std ** 2)
        return masked_mean(per_step, batch["mask"])


def angle_stats(x: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of the angles (radians) between the n agents' rows of ``x [P, n, d]``
    over every position and pair i≠j (the relations L_rel compares)."""
    with full_precision(x.device):
        n = x.shape[1]
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=x.device)
        theta = _angles(x.float(), x.float())[:, off_diagonal]  # [P, n (n - 1)]
        return float(theta.mean()), float(theta.std()) if theta.numel() > 1 else 0.0


def valid_positions(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Agent-major ``[n, B, K, d]`` -> ``[P, n, d]`` at the P real steps of ``mask [B, K]``."""
    return x.permute(1, 2, 0, 3)[mask]


# ---- the algorithm -----------------------------------------------------------------------------------
def _mapping_net(config: Config) -> nn.Module:
    f = config.feature_dim
    return MLP(f, f, f, config.mapping_layers, "relu")


@register_algo
class Distill(DTAlgorithm):
    """Centralized DT teacher, then per-agent student DTs distilled with L_action + α L_rel + β L_KL."""

    name = "distill"
    Config = Config
    layout = "per_agent"
    ablations = tuple(ABLATIONS)

    def __init__(self, spec: EnvSpec, config: Config, device: str | torch.device = "cpu"):
        self.settings = dataclasses.replace(config, **ABLATIONS.get(config.ablation, {}))
        _check_distill_config(self.settings)
        base = {f.name: getattr(config, f.name) for f in dataclasses.fields(DTConfig)}
        base.update(ablation=None, variant=None, hidden=config.teacher_hidden or config.hidden,
                    n_layers=config.teacher_layers or config.n_layers, target_check=False)
        # each network from its own derived seed (module docstring): the teacher draws the same init seed as
        # the students below (the generator is restored after it), so neither depends on the other's shape
        with torch.random.fork_rng(devices=[]):
            self.teacher = Teacher(spec, Teacher.Config(**base, teacher_layout=config.teacher_layout), device=device)
        super().__init__(spec, config, device)  # the students: self.model, self.optimizer, self.head
        self.students = self.model
        s = self.settings
        with torch_seeded(derive_seed(self.init_seed, "mapping")):
            self.N: nn.Module = nn.Identity() if s.mapping == "identity" else _mapping_net(s)
            self.M: nn.Module = self.N if s.mapping in ("identity", "shared") else _mapping_net(s)
        if s.mapping_update == "ema":
            self.M.load_state_dict(self.N.state_dict())  # MoCo: the key encoder starts as the query encoder
        if s.mapping_update != "periodic":
            self.M.requires_grad_(False)  # frozen / ema: M is never a gradient step
        self.N.to(self.device)
        self.M.to(self.device)
        self.n_optimizer = self._mapping_optimizer(self.N)
        self.m_optimizer = (self._mapping_optimizer(self.M)
                            if s.mapping == "separate" and s.mapping_update == "periodic" else None)
        self.student_updates = 0
        self.m_updates = 0

    def model_layout(self, config: Config) -> str:
        """The students' layout: one network per agent, or one shared with agent ids (``student_sharing``)."""
        return "shared" if config.student_sharing else "per_agent"

    def _mapping_optimizer(self, module: nn.Module) -> OptimizerWrapper | None:
        return self.adamw(module) if any(True for _ in module.parameters()) else None

    # ---- stages ---------------------------------------------------------------------------------
    def stage_fractions(self) -> tuple[tuple[str, float], ...]:
        return (("teacher", self.config.teacher_fraction), ("student", 1.0 - self.config.teacher_fraction))

    def plan(self, total_steps: int):
        schedule = super().plan(total_steps)
        self.teacher.plan(schedule.length("teacher"))
        return schedule

    @property
    def teacher_steps(self) -> int:
        return self.schedule.length("teacher")

    @property
    def student_steps(self) -> int:
        return self.schedule.length("student")

    def enter_stage(self, name: str) -> None:
        super().enter_stage(name)
        student = name == "student"
        self.teacher.model.requires_grad_(not student)  # frozen once the students learn from it
        if student:
            self.teacher.model.eval()

    def stage_artifact(self, name: str) -> Teacher | None:
        return self.teacher if name == "teacher" else None

    # ---- data -----------------------------------------------------------------------------------
    def fit_dataset(self, dataset: MultiAgentDataset) -> None:
        super().fit_dataset(dataset)
        self.teacher.fit_dataset(dataset)

    def stage_check(self, name: str, evaluate: Any) -> dict[str, float]:
        """The teacher check when the teacher stage ends (``teacher_check``); ``target_check`` at the end."""
        if name == "teacher":
            if not self.settings.teacher_check:
                return {}
            return {f"teacher_{key}": value for key, value in self.teacher.diagnose(evaluate).items()}
        return super().stage_check(name, evaluate)

    # ---- training -------------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        if self.stage == "teacher":
            return {"teacher_loss": self.teacher.update(batch)["loss"]}
        return self._student_update(self.to_device(batch))

    def distill_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The terms of Eq. 4 per agent ``[n]``, unweighted: ``action``, ``rel``, ``kl`` (zeros when the
        term's weight is 0; ``rel`` and ``kl`` reduced by ``distill_reduction``), on a batch already on the
        device."""
        return self._terms(batch)[0]

    def teacher_inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch the frozen teacher reads: the dataset's, or relabelled to the target (``teacher_rtg``)."""
        if self.settings.teacher_rtg == "dataset":
            return batch
        target = torch.as_tensor(self.target_returns() * self.stats.reward_scale, dtype=torch.float32,
                                 device=self.device)  # [n] scaled evaluation target
        return {**batch, "rtg": relabel_rtg(batch, target)}

    def _terms(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """:meth:`distill_losses` and the angle diagnostics (module docstring; empty without L_rel)."""
        s = self.settings
        teacher = self.teacher.outputs(self.teacher_inputs(batch))  # frozen: no gradient, no dropout
        self.students.train()
        student = self.forward(self.students, batch)
        targets = None
        if s.action_target == "teacher":
            avail = agent_major(batch["avail"]) if "avail" in batch and self.head.discrete else None
            targets = self.head.greedy(teacher.action, avail)
        zeros = torch.zeros(self.spec.n_agents, device=self.device)
        losses = {"action": action_loss(self.head, student.action, batch, targets),
                  "rel": zeros, "kl": zeros}
        if s.beta > 0:
            losses["kl"] = kl_loss(self.head, teacher.action, student.action, batch, s.kl_std)
        angles: dict[str, float] = {}
        if s.alpha > 0 and self.spec.n_agents > 1:
            mask = batch["mask"]
            raw_t, raw_s = valid_positions(teacher.features, mask), valid_positions(student.features, mask)  # [P, n, f]
            mapped_t, mapped_s = self.M(raw_t), self.N(raw_s)
            losses["rel"] = relation_loss(mapped_t, mapped_s, s.rel_loss)
            with torch.no_grad():
                for side, raw, mapped in (("teacher", raw_t, mapped_t), ("student", raw_s, mapped_s)):
                    angles[f"angle_{side}"] = angle_stats(raw)[0]
                    angles[f"angle_{side}_mapped"], angles[f"angle_{side}_mapped_std"] = angle_stats(mapped)
        if s.distill_reduction == "sum":  # both terms are means over the real positions: sums = means x P
            positions = batch["mask"].sum()
            losses["rel"], losses["kl"] = losses["rel"] * positions, losses["kl"] * positions
        return losses, angles

    def _student_update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        s = self.settings
        losses, angles = self._terms(batch)
        per_agent = losses["action"] + s.alpha * losses["rel"] + s.beta * losses["kl"]  # L^i, [n]
        optimizers = [o for o in (self.optimizer, self.n_optimizer, self.m_optimizer) if o is not None]
        for opt in optimizers:
            opt.zero_grad()
        # separate students: student i's parameters appear in L^i only; shared ones: MADT's mean over agents
        (per_agent.mean() if s.student_sharing else per_agent.sum()).backward()
        for opt in optimizers:
            opt.clip_grads()
        warmup = self.warmup_steps(self.student_steps)
        self.optimizer.step(self.student_updates, warmup)
        if self.n_optimizer is not None:
            self.n_optimizer.step(self.student_updates, warmup)
        if self.m_optimizer is not None and (self.student_updates + 1) % s.mapping_period == 0:
            self.m_optimizer.step(self.student_updates, warmup)  # momentum-like: M moves with every e-th gradient only
            self.m_updates += 1
        elif s.mapping_update == "ema":
            ema_update(self.M, self.N, s.mapping_momentum)
            self.m_updates += 1
        self.student_updates += 1
        return {"loss": float(per_agent.detach().mean()),
                **{name: float(value.detach().mean()) for name, value in losses.items()}, **angles}

    # ---- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()  # students
        state.update(teacher=self.teacher.state_dict(), student_updates=self.student_updates,
                     m_updates=self.m_updates, M=self.M.state_dict(), N=self.N.state_dict())
        for key, opt in (("n_optimizer", self.n_optimizer), ("m_optimizer", self.m_optimizer)):
            if opt is not None:
                state[key] = opt.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.teacher.load_state_dict(state["teacher"])
        self.M.load_state_dict(state["M"])
        self.N.load_state_dict(state["N"])
        for key, opt in (("n_optimizer", self.n_optimizer), ("m_optimizer", self.m_optimizer)):
            if opt is not None:
                opt.load_state_dict(state[key])
        self.student_updates, self.m_updates = int(state["student_updates"]), int(state["m_updates"])


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """``target ← momentum · target + (1 − momentum) · source``, parameter by parameter (same architecture)."""
    for t, src in zip(target.parameters(), source.parameters(), strict=True):
        t.lerp_(src, 1.0 - momentum)


def _check_distill_config(config: Config) -> None:
    check_dt_config(config)
    if config.feature_dim < 1:
        raise ValueError(f"config feature_dim must be >= 1 for distill (the teacher's per-agent features are its "
                         f"heads' hidden layers), got {config.feature_dim}")
    choices = {"mapping": ("separate", "shared", "identity"), "rel_loss": ("huber", "mse"),
               "action_target": ("dataset", "teacher"), "distill_reduction": ("mean", "sum"),
               "mapping_update": ("periodic", "frozen", "ema"), "teacher_rtg": ("dataset", "target"),
               "teacher_layout": CENTRALIZED_LAYOUTS}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"config {name} must be one of {', '.join(allowed)}; got {getattr(config, name)!r}")
    if not 0.0 < config.teacher_fraction < 1.0:
        raise ValueError(f"config teacher_fraction must lie in (0, 1), got {config.teacher_fraction}")
    if config.mapping_period < 1 or config.mapping_layers < 1:
        raise ValueError(f"config mapping_period and mapping_layers must be >= 1, got {config.mapping_period}, "
                         f"{config.mapping_layers}")
    if config.teacher_hidden < 0 or config.teacher_layers < 0:
        raise ValueError(f"config teacher_hidden and teacher_layers must be >= 0 (0: the students' size), got "
                         f"{config.teacher_hidden}, {config.teacher_layers}")
    if config.mapping_update != "periodic" and (config.mapping != "separate" or config.ablation == "no_momentum"):
        raise ValueError(f"config mapping_update {config.mapping_update!r} moves a separate M: it cannot be combined "
                         f"with mapping {config.mapping!r} or the ablation {config.ablation!r}")
    if not 0.0 <= config.mapping_momentum < 1.0:
        raise ValueError(f"config mapping_momentum must lie in [0, 1), got {config.mapping_momentum}")
    if config.alpha < 0 or config.beta < 0 or config.kl_std <= 0:
        raise ValueError(f"config alpha and beta must be >= 0 and kl_std > 0, got {config.alpha}, {config.beta}, "
                         f"{config.kl_std}")
