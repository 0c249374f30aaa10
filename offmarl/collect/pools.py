"""Policy pools: an online run's checkpoint series binned by return into levels (SIT, Tian et al., App. C.2).

SIT trains QMIX (discrete) or FacMAC (continuous) online, saves the joint policy at fixed intervals, and
deposits each saved policy into a random, medium or expert pool by its episode return (Tables 4–6); an
agent-wise composition then samples each agent's behaviour from the pool of its level (App. C.3).
Here a pool is built from a run's checkpoint series (``checkpoints/series.csv``, whose first entry is the
untrained algorithm, step 0): every checkpoint is evaluated *as it will behave in the data* (see
Execution; the series' own greedy evaluation can rank a still-soft policy as expert while its sampled
actions are near random), and the return range [floor, the best checkpoint's return] is split 30 / 40 / 30 %
into the levels ``r`` / ``m`` / ``e`` (``SPLITS["sit"]``, Tables 4–5) or into thirds (``SPLITS["thirds"]``,
Table 6's MaMuJoCo pools); a checkpoint below the floor is ``r``. Returns are the per-agent average episode
return, offmarl's dataset metric. The floor (``FLOORS``) is by default the uniform random policy's return,
measured on the same episodes: SIT's "episode return range is determined by fully random policies and the best
policies" (App. C.2). ``floor="lowest"`` takes the lowest checkpoint's return instead, which fails where
training dips below random play: offmarl's QMIX on MPE falls to about −85 in its first 15k frames (uniform
random: −52), so that range put the untrained policy and every near-random checkpoint in ``e``. ``r`` is a
checkpoint of the lowest bin, never the uniform random policy itself. (Cards of pools binned before the floor
existed have no ``floor`` entry: their range started at the lowest checkpoint.)

A pool directory::

    pool.json                 the card: key, levels with their checkpoints and returns, split, edges,
                              execution, content_hash (see :func:`bin_pool`)
    checkpoints/<step>/       each binned checkpoint (algo.json + algo.pt, loadable with load_algo)

A checkpoint is saved policy-only (``Algorithm.save(..., policy_only=True)``: the weights ``policies()``
reads -- QMIX's agent network, the PPO family's actor -- without target networks, mixer, critic or optimizer
state; a quarter of QMIX's full save on MPE). Pools binned before that hold the run's full checkpoints; both
load alike. Its *key* says what training made it — the pool format, the algorithm, the hash of its config, the
env and its kwargs, the seed — and not the offmarl version, so hours of training survive a release. The
*content hash* (SHA-256 over the card's levels and the checkpoint files' bytes) is what a dataset built
from the pool records.

Where a :class:`PoolSpec`'s pool is found (:func:`find_pool`): the cache first
(``$OFFMARL_HOME/pools/<env>/<algo>-<digest>-seed<k>/pool``), then the *shipped* pools, the repository's
``pools/<env>/<algo>-<digest>-seed<k>/pool`` (:func:`shipped_pools_dir`), which a fresh clone has: small built
pools committed by :func:`ship_pool` (``offmarl pool ship``). Nothing writes into a shipped pool. A shipped
pool was converted from a cache pool, so its checkpoint files and content hash are its own; its card's
``converted_from`` names the cache pool's content hash, which ties datasets built from either copy together.

Execution: a pool's checkpoints act as they did in training -- a policy-gradient learner samples from its
action distribution (an algorithm whose ``policies`` takes ``sample_seed``); a value learner acts
ε-greedily with ``epsilon`` (DM², Wang et al., App. C, Table 1: QMIX demonstrations ε-greedy at 0.1 on
3s_vs_3z and 0 on 5m_vs_6m and 3s_vs_4z; 0 elsewhere).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from offmarl.algos import load_algo
from offmarl.algos.base import policies_take
from offmarl.collect.mixing import LEVEL_NAMES, LEVELS, MixedPolicy
from offmarl.collect.rollout import derive_seed, rollout
from offmarl.core.files import atomic_directory, atomic_write_json, offmarl_home
from offmarl.envs.base import EnvSpec, TimeStep
from offmarl.policies.base import JointPolicy

POOL_FORMAT = 1
SPLITS = {"sit": (0.3, 0.4, 0.3), "thirds": (1 / 3, 1 / 3, 1 / 3)}
FLOORS = ("random", "lowest")
_FLOOR_NAMES = {"random": "uniform random policy's return", "lowest": "lowest checkpoint's return"}
# DM² App. C, Table 1: the ε of QMIX demonstrations, chosen so the win rate falls by at most 10 %
DEMONSTRATION_EPSILON = {"smac_5m_vs_6m": 0.0, "smac_3s_vs_4z": 0.0, "smac_3s_vs_3z": 0.1}


@dataclass(frozen=True)
class PoolSpec:
    """What to train for a pool and how to bin it: what ``offmarl pool build`` and a pool recipe name.

    The online run ``algo`` on ``env`` (``env_kwargs``, ``num_envs`` sub-envs) for ``steps`` frames with
    ``seed`` (config overrides ``sets``, ``preset``), keeping an evaluated checkpoint every ``series_every``
    frames (``eval_episodes`` greedy episodes each); then :func:`bin_pool` with ``split``, ``episodes``
    and ``epsilon``. Its :meth:`cache_dir` is keyed by all of it (not by the offmarl version)."""

    env: str
    algo: str
    steps: int
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    sets: tuple[str, ...] = ()
    preset: str | None = None
    num_envs: int = 8
    series_every: int = 50_000
    eval_episodes: int = 32
    split: str = "sit"
    episodes: int = 100
    epsilon: float | None = None

    def key(self) -> dict[str, Any]:
        return {"pool_format": POOL_FORMAT, **dataclasses.asdict(self), "sets": sorted(self.sets)}

    @classmethod
    def from_key(cls, key: dict[str, Any]) -> "PoolSpec":
        """The spec whose :meth:`key` is ``key`` (as a pool card's ``spec`` records it)."""
        if key.get("pool_format") != POOL_FORMAT:
            raise PoolError(f"pool spec of format {key.get('pool_format')!r}; this offmarl reads {POOL_FORMAT}")
        fields = {k: v for k, v in key.items() if k != "pool_format"}
        try:
            return cls(**{**fields, "sets": tuple(fields.get("sets", ()))})
        except TypeError as exc:
            raise PoolError(f"not a pool spec: {exc}") from None

    @property
    def relative_dir(self) -> Path:
        """``<env>/<algo>-<12 hex of the key>-seed<k>``: where the cache and the shipped pools keep it."""
        digest = hashlib.sha256(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:12]
        return Path(self.env) / f"{self.algo}-{digest}-seed{self.seed}"

    def cache_dir(self) -> Path:
        """``$OFFMARL_HOME/pools/<env>/<algo>-<12 hex of the key>-seed<k>/`` (its ``run/`` and ``pool/``)."""
        return offmarl_home() / "pools" / self.relative_dir

    @property
    def pool_dir(self) -> Path:
        """The pool in the cache (built there by ``offmarl pool build`` or a trained recipe)."""
        return self.cache_dir() / "pool"

    @property
    def shipped_dir(self) -> Path | None:
        """The pool among the shipped ones (``pools/`` of the repository); None where offmarl ships none."""
        root = shipped_pools_dir()
        return None if root is None else root / self.relative_dir / "pool"


#: the shipped pools of a checkout: ``pools/`` beside the ``offmarl`` package (an editable install); a
#: non-editable install (a wheel) ships none, and its pools are built into the cache
SHIPPED_POOLS = Path(__file__).resolve().parents[2] / "pools"


def shipped_pools_dir() -> Path | None:
    """The repository's ``pools/`` (``SHIPPED_POOLS``) when offmarl runs from a checkout -- the directory above
    the package holds ``pyproject.toml`` -- else None (an installed wheel: no shipped pools)."""
    return SHIPPED_POOLS if (SHIPPED_POOLS.parent / "pyproject.toml").is_file() else None


def find_pool(spec: PoolSpec) -> "Pool | None":
    """The pool ``spec`` names: the cache's, else the shipped one (module docstring); None when neither holds it."""
    for where in (spec.pool_dir, spec.shipped_dir):
        if where is not None and (where / "pool.json").is_file():
            return Pool.load(where)
    return None


class PoolError(ValueError):
    """A pool that cannot be built or read; the message names the pool or run and the problem."""


@dataclass(frozen=True)
class PoolCheckpoint:
    """One binned checkpoint: its training step (frames), returns and level."""

    step: int
    return_mean: float  # as it behaves in the data (the pool's execution)
    return_std: float
    greedy_return: float  # the training run's greedy evaluation
    win_rate: float | None  # greedy, where the env reports wins
    level: str
    path: str  # relative to the pool directory

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "return_mean": self.return_mean, "return_std": self.return_std,
                "greedy_return": self.greedy_return, "win_rate": self.win_rate, "level": self.level,
                "path": self.path}


def parse_split(split: str | Sequence[float]) -> tuple[float, float, float]:
    """``"sit"``, ``"thirds"`` or three fractions (``"0.3,0.4,0.3"``) summing to 1."""
    if isinstance(split, str):
        if split in SPLITS:
            return SPLITS[split]
        try:
            split = [float(x) for x in split.split(",")]
        except ValueError:
            raise PoolError(f"split {split!r}: use {' or '.join(SPLITS)} or three fractions like 0.3,0.4,0.3")
    fractions = tuple(float(x) for x in split)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise PoolError(f"split {fractions}: three positive fractions (r, m, e) summing to 1")
    return fractions  # type: ignore[return-value]


def config_hash(algo_config: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of the algorithm config (key-sorted JSON)."""
    return hashlib.sha256(json.dumps(algo_config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def read_series(run: Path) -> list[dict[str, Any]]:
    """A run's ``checkpoints/series.csv`` as dicts; entries without an evaluation are an error."""
    path = run / "checkpoints" / "series.csv"
    if not path.is_file():
        raise PoolError(f"{run} has no checkpoint series ({path}); train it with --series-every and --eval-episodes")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise PoolError(f"{path} lists no checkpoints")
    entries = []
    for row in rows:
        if not row["return_mean"]:
            raise PoolError(f"{path}: the checkpoint at step {row['step']} has no evaluated return "
                            "(train with --eval-episodes > 0)")
        entries.append({"step": int(row["step"]), "return_mean": float(row["return_mean"]),
                        "return_std": float(row["return_std"]),
                        "win_rate": float(row["win_rate"]) if row["win_rate"] else None, "path": row["path"]})
    return entries


def level_edges(returns: Sequence[float], split: Sequence[float], floor: float | None = None) -> list[float]:
    """``[low, r|m edge, m|e edge, best]``: the return range [``floor`` (default: the lowest return), the best]
    cut at the split's cumulative fractions."""
    low, best = (min(returns) if floor is None else floor), max(returns)
    first, second = split[0], split[0] + split[1]
    return [low, low + first * (best - low), low + second * (best - low), best]


def level_of(value: float, edges: Sequence[float]) -> str:
    """The level of a return: ``r`` below the first inner edge, ``e`` at or above the second, else ``m``."""
    return "r" if value < edges[1] else "e" if value >= edges[2] else "m"


def _content_hash(root: Path, levels: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(levels, sort_keys=True).encode())
    for path in sorted((root / "checkpoints").rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def execution_of(algo: Any, env_name: str, epsilon: float | None = None) -> dict[str, Any]:
    """How ``algo``'s checkpoints act in a pool (module docstring): ``{"mode": "sampled"}`` or
    ``{"mode": "epsilon-greedy", "epsilon": ε}`` (None → ``DEMONSTRATION_EPSILON`` for the env, else 0)."""
    if policies_take(algo, "sample_seed"):
        return {"mode": "sampled"}
    return {"mode": "epsilon-greedy",
            "epsilon": DEMONSTRATION_EPSILON.get(env_name, 0.0) if epsilon is None else float(epsilon)}


def behaviour_policy(algo: Any, execution: dict[str, Any], spec: EnvSpec, seed: int) -> JointPolicy:
    """``algo``'s joint policy executed as ``execution`` says."""
    if execution["mode"] == "sampled":
        return algo.policies(sample_seed=seed)
    return MixedPolicy(algo.policies(), spec, execution["epsilon"], seed)


def bin_pool(run: str | Path, out: str | Path, split: str | Sequence[float] = "sit", episodes: int = 100,
             seed: int = 0, epsilon: float | None = None, progress: bool = True, floor: str = "random",
             spec: PoolSpec | None = None) -> "Pool":
    """Bin run ``run``'s checkpoint series into a pool at ``out`` (module docstring): each checkpoint plays
    ``episodes`` episodes (seed ``seed``) as it will in the data, and its return decides its level. ``floor``
    (``FLOORS``): where the return range starts -- the uniform random policy's return on the same episodes, or
    the lowest checkpoint's. A level left empty is an error naming it, its return bin and the best return
    reached; so is a series whose best checkpoint does not beat the floor. ``epsilon``: the ε of a value
    learner's ε-greedy execution (:func:`execution_of`). Each checkpoint is saved policy-only. ``spec``: the
    :class:`PoolSpec` that trained the run (``offmarl pool build``, a recipe), recorded in the card."""
    from tqdm.auto import tqdm

    from offmarl.envs import make_env
    from offmarl.policies.random import RandomPolicy

    run, out = Path(run), Path(out)
    shipped = shipped_pools_dir()
    if shipped is not None and out.resolve().is_relative_to(shipped.resolve()):
        raise PoolError(f"{out} is among the shipped pools ({shipped}), which nothing but `offmarl pool ship` writes "
                        "into; bin into another directory, then ship it")
    config_path = run / "config.json"
    if not config_path.is_file():
        raise PoolError(f"{run} is not a run directory (no config.json)")
    config = json.loads(config_path.read_text())
    env_source = config.get("env_source")
    if env_source is None:
        raise PoolError(f"{run} did not train online (its config.json has no env_source); a pool bins an online "
                        "run's checkpoint series")
    if episodes < 1:
        raise PoolError(f"episodes must be >= 1, got {episodes}")
    if floor not in FLOORS:
        raise PoolError(f"floor must be one of {', '.join(FLOORS)}, got {floor!r}")
    fractions = parse_split(split)
    entries = read_series(run)
    env_name, env_kwargs = env_source["env_name"], dict(env_source.get("env_kwargs", {}))
    env = make_env(env_name, num_envs=min(episodes, 64), seed=seed, **env_kwargs)
    execution = None
    with atomic_directory(out) as staging:  # a failure below (an empty level, ...) leaves no pool behind
        try:
            for entry in tqdm(entries, desc=f"evaluate {run.name}'s checkpoints", unit="checkpoint",
                              disable=not progress):
                algo = load_algo(run / entry["path"])
                algo.save(staging / "checkpoints" / f"{entry['step']:012d}", policy_only=True)
                execution = execution or execution_of(algo, env_name, epsilon)
                played = rollout(env, behaviour_policy(algo, execution, env.spec, derive_seed(seed, "behaviour")),
                                 episodes, seed, progress=False, behavior={})
                per_episode = played.episode_returns().mean(axis=1)  # [E] per-agent average return
                entry.update(greedy_return=entry["return_mean"], return_mean=float(per_episode.mean()),
                             return_std=float(per_episode.std()))
            random_return = None
            if floor == "random":
                played = rollout(env, RandomPolicy(env.spec, seed=derive_seed(seed, "random")), episodes, seed,
                                 progress=False, behavior={})
                random_return = float(played.episode_returns().mean(axis=1).mean())
        finally:
            env.close()
        returns = [e["return_mean"] for e in entries]
        if random_return is not None and max(returns) <= random_return:
            raise PoolError(f"{run}: no checkpoint beats the uniform random policy ({max(returns):.4g} <= "
                            f"{random_return:.4g} per-agent average return); train longer or bin with floor='lowest'")
        edges = level_edges(returns, fractions, random_return)
        by_level: dict[str, list[PoolCheckpoint]] = {x: [] for x in LEVELS}
        for entry in entries:
            level = level_of(entry["return_mean"], edges)
            by_level[level].append(PoolCheckpoint(entry["step"], entry["return_mean"], entry["return_std"],
                                                  entry["greedy_return"], entry["win_rate"], level,
                                                  f"checkpoints/{entry['step']:012d}"))
        for k, level in enumerate(LEVELS):
            if not by_level[level]:
                raise PoolError(f"{run}: pool level {level!r} ({LEVEL_NAMES[level]}) is empty: no checkpoint "
                                f"returned within [{edges[k]:.4g}, {edges[k + 1]:.4g}) (the best return reached is "
                                f"{edges[3]:.4g}, the range starts at {edges[0]:.4g}, the {_FLOOR_NAMES[floor]}); "
                                "train longer, keep checkpoints more often (--series-every) or choose another split")
        levels = {level: [c.to_dict() for c in by_level[level]] for level in LEVELS}
        key = {"pool_format": POOL_FORMAT, "algo": config["algo"],
               "algo_config_hash": config_hash(config["algo_config"]), "env_name": env_name,
               "env_kwargs": env_kwargs, "seed": config["train_config"]["seed"]}
        card = {"format": POOL_FORMAT, "key": key, "split": list(fractions), "edges": edges, "levels": levels,
                "floor": {"rule": floor, "random_return": random_return},
                "level_names": dict(LEVEL_NAMES), "execution": execution,
                "evaluation": {"episodes": episodes, "seed": seed}, "source_run": str(run.resolve()),
                **({} if spec is None else {"spec": spec.key()}), "content_hash": _content_hash(staging, levels)}
        atomic_write_json(staging / "pool.json", card)
    return Pool.load(out)


@dataclass(frozen=True)
class Pool:
    """A pool directory (module docstring), read with :meth:`load`."""

    root: Path
    card: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> "Pool":
        root = Path(path)
        card_path = root / "pool.json"
        if not card_path.is_file():
            raise PoolError(f"{root} is not a policy pool (no pool.json); build one with `offmarl pool bin RUN`")
        try:
            card = json.loads(card_path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PoolError(f"{card_path} is not a JSON pool card: {exc}") from None
        if card.get("format") != POOL_FORMAT:
            raise PoolError(f"{card_path}: pool format {card.get('format')!r}, this offmarl reads {POOL_FORMAT}")
        return cls(root, card)

    @property
    def env_name(self) -> str:
        return self.card["key"]["env_name"]

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return dict(self.card["key"]["env_kwargs"])

    @property
    def content_hash(self) -> str:
        return self.card["content_hash"]

    @property
    def best_return(self) -> float:
        """The return of the pool's best checkpoint as it behaves in the data: a pool dataset's expert."""
        return max(c.return_mean for level in LEVELS for c in self.checkpoints(level))

    def best_checkpoint(self) -> PoolCheckpoint:
        """The checkpoint with the highest return as it behaves in the data: the pool's trained expert."""
        return max(self.checkpoints("e"), key=lambda c: c.return_mean)

    def checkpoints(self, level: str) -> list[PoolCheckpoint]:
        if level not in LEVELS:
            raise PoolError(f"level {level!r}: pool levels are r, m, e")
        return [PoolCheckpoint(**c) for c in self.card["levels"][level]]

    def record(self) -> dict[str, Any]:
        """What a dataset's card records of the pool it came from."""
        return {"path": str(self.root), "content_hash": self.content_hash, "key": self.card["key"],
                "split": self.card["split"], "edges": self.card["edges"], "floor": self.card.get("floor"),
                "execution": self.card["execution"],
                "levels": {x: [c["step"] for c in self.card["levels"][x]] for x in LEVELS}}

    def rows(self) -> list[dict[str, Any]]:
        """One row per checkpoint, in step order (what ``offmarl pool show`` prints)."""
        rows = [c.to_dict() for x in LEVELS for c in self.checkpoints(x)]
        return sorted(rows, key=lambda row: row["step"])


def ship_pool(source: str | Path, known: Sequence[PoolSpec] = (), root: str | Path | None = None) -> "Pool":
    """Copy the built pool ``source`` (a pool directory, or the cache directory holding its ``pool/``) into the
    shipped pools ``root`` (default: :func:`shipped_pools_dir`) as ``<root>/<its spec's relative_dir>/pool``,
    every checkpoint converted to policy-only (``load_algo`` then ``save(policy_only=True)``; the levels stay as
    binned). Its spec is the one its card records, or -- for a pool binned before cards kept it -- the one of
    ``known`` (the recipes' pool specs) whose cache directory holds it. The shipped card keeps the source's and
    adds ``spec``, ``converted_from`` (the source's content hash) and its own content hash over the new files.
    An existing shipped pool is not replaced."""
    source = Path(source)
    pool = Pool.load(source / "pool" if not (source / "pool.json").is_file() and (source / "pool").is_dir() else source)
    where = Path(pool.root.parent.parent.name) / pool.root.parent.name  # <env>/<algo>-<digest>-seed<k> in a cache
    named = [spec for spec in known if spec.relative_dir == where]
    if "spec" in pool.card:
        spec = PoolSpec.from_key(pool.card["spec"])
    elif named:
        spec = named[0]
    else:
        raise PoolError(f"{pool.root}: its card records no pool spec and no known pool spec is kept at {where}; "
                        "ship a pool from the cache that a recipe names or that `offmarl pool build` made")
    key = pool.card["key"]
    for field_name, value in (("env_name", spec.env), ("algo", spec.algo), ("seed", spec.seed),
                              ("env_kwargs", spec.env_kwargs)):
        if key[field_name] != value:
            raise PoolError(f"{pool.root} is not the pool of that spec: its {field_name} is {key[field_name]!r}, the "
                            f"spec's {value!r}")
    root = shipped_pools_dir() if root is None else Path(root)
    if root is None:
        raise PoolError("this offmarl is not a checkout (no pyproject.toml beside the package): it has no pools/ "
                        "directory to ship into")
    out = root / spec.relative_dir / "pool"
    if (out / "pool.json").is_file():
        raise PoolError(f"{out} is already shipped; remove it first (git rm -r) to ship it again")
    levels = pool.card["levels"]
    with atomic_directory(out) as staging:
        for c in (c for level in LEVELS for c in pool.checkpoints(level)):
            load_algo(pool.root / c.path).save(staging / c.path, policy_only=True)
        card = {**pool.card, "spec": spec.key(), "converted_from": pool.content_hash,
                "content_hash": _content_hash(staging, levels)}
        atomic_write_json(staging / "pool.json", card)
    return Pool.load(out)


def verify_content_hash(pool: "Pool") -> None:
    """Raise :class:`PoolError` unless the card's content hash is that of the pool's files and levels."""
    actual = _content_hash(pool.root, pool.card["levels"])
    if actual != pool.content_hash:
        raise PoolError(f"{pool.root}: its files hash to {actual[:12]}, its card says {pool.content_hash[:12]} "
                        "(a checkpoint changed or is missing)")


class PoolLevelPolicy(JointPolicy):
    """Agent i acts as a checkpoint of level ``levels[i]``, drawn uniformly from that level for every new
    episode of every sub-env; the checkpoint's own agent-i policy acts, executed as the pool says.

    Every checkpoint in use by some sub-env acts on the whole batch (so its recurrent state stays whole),
    and each sub-env takes the actions of its own checkpoint."""

    def __init__(self, pool: Pool, spec: EnvSpec, levels: Sequence[str], seed: int):
        if len(levels) != spec.n_agents:
            raise PoolError(f"{len(levels)} levels {list(levels)} given for {spec.n_agents} agents")
        self.pool, self.spec, self.levels = pool, spec, tuple(levels)
        self.rng = np.random.default_rng(derive_seed(seed, "pool-choice"))
        self.choices = [pool.checkpoints(x) for x in self.levels]  # per agent, the checkpoints it draws from
        self.policies = {  # step -> the checkpoint's joint behaviour policy
            c.step: behaviour_policy(load_algo(pool.root / c.path), pool.card["execution"], spec,
                                     derive_seed(seed, "pool-policy", c.step))
            for c in {c.step: c for cs in self.choices for c in cs}.values()}
        self.drawn: np.ndarray | None = None  # [B, n] the step of each sub-env's checkpoint for agent i

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        for policy in self.policies.values():
            policy.reset(batch_size, mask)
        if self.drawn is None or mask is None or self.drawn.shape[0] != batch_size:
            self.drawn = np.zeros((batch_size, self.spec.n_agents), dtype=np.int64)
            mask = np.ones(batch_size, dtype=bool)
        for i, choices in enumerate(self.choices):
            steps = np.array([c.step for c in choices])
            self.drawn[mask, i] = steps[self.rng.integers(len(steps), size=int(mask.sum()))]

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        actions = None
        for step in np.unique(self.drawn):
            out = np.asarray(self.policies[int(step)].act(ts, first))  # [B, n] or [B, n, act_dim]
            if actions is None:
                actions = np.zeros_like(out)
            use = self.drawn == step  # [B, n]
            actions[use] = out[use]
        return actions


class AgentwisePolicy(JointPolicy):
    """Agent i acts as agent i of ``policies[i]``: experts trained in separate runs executed together (DM²'s
    experts that were not co-trained). Every joint policy acts on the whole batch, so its recurrent state
    stays whole."""

    def __init__(self, policies: Sequence[JointPolicy]):
        self.policies = list(policies)

    def reset(self, batch_size: int, mask: np.ndarray | None = None) -> None:
        for policy in self.policies:
            policy.reset(batch_size, mask)

    def act(self, ts: TimeStep, first: bool = False) -> np.ndarray:
        joint = [np.asarray(policy.act(ts, first)) for policy in self.policies]  # each [B, n] or [B, n, act_dim]
        return np.stack([actions[:, i] for i, actions in enumerate(joint)], axis=1)


def pool_expert_factory(pools: Sequence[Pool], spec: EnvSpec):
    """The trained expert of ``pools`` as an expert factory (``seed -> JointPolicy``, what tiers, rollouts and
    normalization take): one pool's best checkpoint acting for the whole team (co-trained), or, with one
    pool per agent, agent i as pool i's best checkpoint (:class:`AgentwisePolicy`). Each acts as its pool
    says (sampled or ε-greedy)."""
    if len(pools) not in (1, spec.n_agents):
        raise PoolError(f"{len(pools)} pools for {spec.n_agents} agents: give one pool (a co-trained team) or one "
                        "per agent")
    algos = [load_algo(pool.root / pool.best_checkpoint().path) for pool in pools]

    def make_expert(seed: int) -> JointPolicy:
        joint = [behaviour_policy(algo, pool.card["execution"], spec, derive_seed(seed, "pool-expert", k))
                 for k, (algo, pool) in enumerate(zip(algos, pools))]
        return joint[0] if len(joint) == 1 else AgentwisePolicy(joint)

    return make_expert
