"""Agent-wise compositions (SIT App. C) and per-agent dataset mixtures (MABCQ §4.1).

Composition notation (SIT, Tian et al., App. C.3, Tables 7–8, without the agent names):
``"50%[r,r,r]+50%[r,r,m]"`` = half of the episodes with agents 1–2 random and agent 3 medium, half
with all three random. Levels per agent: ``r`` random, ``m`` medium, ``e`` expert
(:mod:`offmarl.collect.mixing`). Weights are percentages summing to 100; a single component may omit
its weight (``"[r,m,e]"`` = ``"100%[r,m,e]"``). SIT's agent-named form (``[ls_1^r, ls_2^m, …]``) is not
accepted: write the levels in agent order.

Episode split: component k gets ``round(weight_k × N / 100)`` episodes by the largest-remainder rule
(so the counts sum to N), and at least one; each component is collected as its own rollout with seed
``derive_seed(seed, "component", k)`` and the parts are concatenated in component order.

Recorded levels: the dataset's ``behavior_levels [E, n]`` holds each agent's level in each episode as an index
into the card's ``behavior_level_names`` -- ``["random", "medium", "expert"]`` (:data:`BEHAVIOR_LEVEL_NAMES`,
index k = ``LEVELS[k]`` = r, m, e), or a pool's own names for its r, m, e levels. A component's policy holds
agent i at ``levels[i]`` for every episode it plays: :class:`PerAgentLevelPolicy` mixes at a fixed per-agent
rate and :class:`PoolLevelPolicy` draws, per episode and sub-env, a *checkpoint* within agent i's level, never
another level. So every episode of component k records component k's levels, which is what was played.

Per-agent datasets (MABCQ, Jiang & Lu, §4.1): agent i's dataset is the composition
``20%[r,…,r] + 35%[i: m, others: e] + 35%[i: e, others: m] + 10%[e,…,e]`` with MABCQ's "small noise"
(``DEFAULT_EXPERT_NOISE``, see :mod:`offmarl.collect.mixing`) on the last three parts. Each agent's
dataset is collected separately (seed ``derive_seed(seed, "agent", i)``) and holds the whole joint
trajectories; a decentralized learner reads only agent i's slice of it.

Departures (MABCQ): the 20 % "early training" part is the uniform random policy (we have no SAC
training run); the mixture is over episodes, not transitions (equal for fixed-length episodes); the
"intermediate policy" is our medium level (expert ε-mixed at ``medium_rate``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from offmarl.collect.mixing import DEFAULT_EXPERT_NOISE, DEFAULT_MEDIUM_RATE, LEVEL_NAMES, LEVELS, PerAgentLevelPolicy
from offmarl.collect.pools import Pool, PoolLevelPolicy
from offmarl.collect.rollout import concatenate, derive_seed, make_card, mean_return, rollout
from offmarl.data.dataset import MultiAgentDataset
from offmarl.data.sources import PerAgentDatasets
from offmarl.envs.base import BatchedEnv
from offmarl.policies.base import JointPolicy

ExpertFactory = Callable[[int], JointPolicy]

#: ``card.behavior_level_names`` of a composition over the scripted levels: ``behavior_levels`` value k is
#: level ``LEVELS[k]``.
BEHAVIOR_LEVEL_NAMES = tuple(LEVEL_NAMES[x] for x in LEVELS)

_COMPONENT = re.compile(r"^\s*(?:(?P<weight>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*%\s*)?\[(?P<levels>[^\[\]]*)\]\s*$")


@dataclass(frozen=True)
class Component:
    """One part of a composition: ``weight`` percent of the episodes, agent i acting at ``levels[i]``.

    ``noise`` is the expert-action noise of this part (0 in SIT compositions)."""

    weight: float
    levels: tuple[str, ...]
    noise: float = 0.0

    def __str__(self) -> str:
        return f"{self.weight:g}%[{','.join(self.levels)}]"


def format_composition(components: Sequence[Component]) -> str:
    return "+".join(str(c) for c in components)


def parse_composition(text: str, n_agents: int | None = None) -> list[Component]:
    """Parse ``"50%[r,r,r]+50%[r,r,m]"`` into components; ``n_agents`` (when given) is checked.

    Raises ``ValueError`` naming the component and the problem (syntax, level letter, agent count,
    weights not summing to 100 %)."""
    if not text or not text.strip():
        raise ValueError("composition is empty; write e.g. \"50%[r,r,r]+50%[r,r,m]\"")
    parts = text.split("+")
    components = []
    for k, part in enumerate(parts, start=1):
        match = _COMPONENT.match(part)
        where = f"composition {text!r}: component {k} {part.strip()!r}"
        if match is None:
            raise ValueError(f"{where} is not of the form 50%[r,m,e]")
        if match["weight"] is None and len(parts) > 1:
            raise ValueError(f"{where} has no weight; with several components write each as 50%[...]")
        weight = 100.0 if match["weight"] is None else float(match["weight"])
        if weight <= 0:
            raise ValueError(f"{where} has weight {weight:g}%; weights must be > 0")
        levels = tuple(x.strip() for x in match["levels"].split(","))
        for x in levels:
            if x not in LEVELS:
                raise ValueError(f"{where} has level {x!r}; levels are r (random), m (medium), e (expert)")
        if n_agents is not None and len(levels) != n_agents:
            raise ValueError(f"{where} lists {len(levels)} levels but the env has {n_agents} agents")
        if components and len(levels) != len(components[0].levels):
            raise ValueError(f"{where} lists {len(levels)} levels but component 1 lists {len(components[0].levels)}")
        components.append(Component(weight, levels))
    total = sum(c.weight for c in components)
    if abs(total - 100.0) > 1e-6:
        raise ValueError(f"composition {text!r}: weights sum to {total:g}%, not 100%")
    return components


def split_episodes(total: int, weights: Sequence[float]) -> list[int]:
    """Episodes per component: largest-remainder rounding of ``total × w / Σw``, at least 1 each."""
    w = np.asarray(weights, dtype=np.float64)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    remainder = total - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")  # largest fractional parts first, ties by order
    counts[order[:remainder]] += 1
    return np.maximum(counts, 1).tolist()


def collect_components(env: BatchedEnv, make_expert: ExpertFactory | None, components: Sequence[Component],
                       episodes: int, seed: int, *, medium_rate: float = DEFAULT_MEDIUM_RATE,
                       state_only: bool = False, progress: bool = True, behavior: dict[str, Any],
                       recipe: str | None = None, extra: dict[str, Any] | None = None,
                       quality_tier: str | None = None, pool: Pool | None = None) -> MultiAgentDataset:
    """Collect each component's share of ``episodes``, concatenated: with :class:`PerAgentLevelPolicy` (the
    scripted levels), or with ``pool`` each agent as a checkpoint of its pool level (:class:`PoolLevelPolicy`;
    MABCQ's expert noise does not apply to pool checkpoints, which act as they did in training).

    ``card.extra["components"]`` lists each part's weight, levels, noise, episodes, seed and mean return."""
    spec = env.spec
    counts = split_episodes(episodes, [c.weight for c in components])
    level_names = behavior_level_names(pool)
    parts, records = [], []
    for k, (component, count) in enumerate(zip(components, counts)):
        part_seed = derive_seed(seed, "component", k)
        if pool is not None:
            policy: JointPolicy = PoolLevelPolicy(pool, spec, component.levels, derive_seed(part_seed, "pool"))
        else:
            needs_expert = any(x != "r" for x in component.levels)
            if needs_expert and make_expert is None:
                raise ValueError(f"component {component} needs an expert policy for env {spec.name!r}")
            expert = make_expert(derive_seed(part_seed, "expert")) if needs_expert else None
            policy = PerAgentLevelPolicy(expert, spec, component.levels, derive_seed(part_seed, "mixing"),
                                         medium_rate=medium_rate, noise=component.noise)
        part = rollout(env, policy, count, part_seed, state_only=state_only, progress=progress, behavior={})
        # every episode of this part played at the component's levels (module docstring, "Recorded levels")
        part.behavior_levels = np.tile(level_indices(component.levels), (part.n_episodes, 1))  # [E_k, n] uint8
        part.card.behavior_level_names = list(level_names)
        parts.append(part)
        records.append({"weight": component.weight, "levels": list(component.levels),
                        "level_names": [LEVEL_NAMES[x] for x in component.levels], "noise": component.noise,
                        "episodes": count, "seed": part_seed, "return_mean": mean_return(part)})
    card = make_card(spec, behavior=behavior, seed=seed, state_only=state_only, quality_tier=quality_tier,
                     recipe=recipe, extra={**(extra or {}), "components": records})
    return concatenate(parts, card)


def behavior_level_names(pool: Pool | None = None) -> list[str]:
    """The card's ``behavior_level_names`` of a composition: the names of levels r, m, e -- the pool's own
    (its card's ``level_names``) with ``pool``, else :data:`BEHAVIOR_LEVEL_NAMES`."""
    if pool is None:
        return list(BEHAVIOR_LEVEL_NAMES)
    names = pool.card.get("level_names") or LEVEL_NAMES
    return [names[x] for x in LEVELS]


def level_indices(levels: Sequence[str]) -> np.ndarray:
    """Level letters (``"r"``/``"m"``/``"e"``) as the indices ``behavior_levels`` stores ``[n]`` uint8."""
    return np.asarray([LEVELS.index(x) for x in levels], dtype=np.uint8)


def component_levels(components: Sequence[dict[str, Any]]) -> np.ndarray:
    """Each episode's per-agent level names ``[E, n]`` of a composition dataset from its card's
    ``extra["components"]`` (:func:`collect_components` concatenates the parts in component order).

    For files written before datasets stored ``behavior_levels`` (composition recipes cached under
    ``RECIPES_VERSION`` 3) and for runs trained on them, whose ``config.json`` holds the card alone."""
    rows = [np.tile(np.asarray([LEVEL_NAMES[x] for x in part["levels"]]), (int(part["episodes"]), 1))
            for part in components]
    if not rows:
        raise ValueError("a composition dataset lists its components in card.extra['components']; none given")
    return np.concatenate(rows)


def episode_levels(ds: MultiAgentDataset) -> np.ndarray:
    """Each agent's behaviour level name in each episode ``[E, n]`` (e.g. ``"random"``): the stored
    ``behavior_levels`` named by the card's ``behavior_level_names``, else, for a composition file written
    before the field existed, from its card's components (:func:`component_levels`). A dataset with neither
    is a ``ValueError``."""
    if ds.behavior_levels is not None:
        return np.asarray(ds.card.behavior_level_names)[ds.behavior_levels]
    components = ds.card.extra.get("components")
    if not components:
        raise ValueError("the dataset records no behaviour levels (no behavior_levels field, no "
                         "card.extra['components']): it was not built from a composition")
    return component_levels(components)


def collect_composition(env: BatchedEnv, make_expert: ExpertFactory | None, composition: str, episodes: int,
                        seed: int, *, medium_rate: float = DEFAULT_MEDIUM_RATE, expert_name: str = "expert",
                        state_only: bool = False, progress: bool = True, recipe: str | None = None,
                        extra: dict[str, Any] | None = None, pool: Pool | None = None) -> MultiAgentDataset:
    """A SIT-style agent-wise composition dataset (module docstring); with ``pool``, the levels are the pool's."""
    components = parse_composition(composition, env.spec.n_agents)
    behavior = {"policy": "composition", "composition": format_composition(components),
                **({"pool": pool.record()} if pool is not None
                   else {"expert": expert_name, "medium_rate": float(medium_rate)})}
    return collect_components(env, make_expert, components, episodes, seed, medium_rate=medium_rate,
                              state_only=state_only, progress=progress, behavior=behavior, recipe=recipe,
                              extra=extra, pool=pool)


MABCQ_MIXTURE = ("20% random (all agents) + 35% (agent i medium, others expert) + 35% (agent i expert, others medium) "
                 "+ 10% expert (all agents)")


def mabcq_components(agent: int, n_agents: int, noise: float = DEFAULT_EXPERT_NOISE) -> list[Component]:
    """Agent ``agent``'s MABCQ §4.1 mixture as composition components (module docstring)."""
    def levels(mine: str, others: str) -> tuple[str, ...]:
        return tuple(mine if j == agent else others for j in range(n_agents))

    return [Component(20.0, levels("r", "r")), Component(35.0, levels("m", "e"), noise),
            Component(35.0, levels("e", "m"), noise), Component(10.0, levels("e", "e"), noise)]


def collect_per_agent(env: BatchedEnv, make_expert: ExpertFactory, episodes: int, seed: int, *,
                      medium_rate: float = DEFAULT_MEDIUM_RATE, noise: float = DEFAULT_EXPERT_NOISE,
                      expert_name: str = "expert", state_only: bool = False, progress: bool = True,
                      recipe: str | None = None, extra: dict[str, Any] | None = None,
                      pool: Pool | None = None) -> PerAgentDatasets:
    """One dataset of ``episodes`` episodes per agent, each mixed as in MABCQ §4.1 (module docstring); with
    ``pool``, the medium and expert parts are the pool's checkpoints (MABCQ's intermediate and expert SAC
    policies), without the expert noise.

    Write them with ``offmarl.data.io.save_per_agent_datasets``; read agent i back with
    ``load_dataset(path, agent=i)``."""
    n = env.spec.n_agents
    datasets = []
    for i in range(n):
        components = mabcq_components(i, n, noise)
        behavior = {"policy": "mabcq_per_agent", "agent": i, "mixture": MABCQ_MIXTURE,
                    "composition": format_composition(components),
                    **({"pool": pool.record()} if pool is not None else
                       {"expert": expert_name, "medium_rate": float(medium_rate), "expert_noise": float(noise)})}
        agent_seed = derive_seed(seed, "agent", i)
        datasets.append(collect_components(
            env, make_expert, components, episodes, agent_seed, medium_rate=medium_rate,
            state_only=state_only, progress=progress, behavior=behavior, recipe=recipe, pool=pool,
            extra={**(extra or {}), "per_agent": {"agent": i, "n_agents": n, "agent_seed": agent_seed}}))
        datasets[-1].card.seed = seed  # the user's seed; agent_seed is derived from it
    return PerAgentDatasets(tuple(datasets))
