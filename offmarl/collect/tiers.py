"""Quality tiers good / normal / poor (Tseng et al., App. D and Table 11).

Tseng et al. collect Grid-World and Highway data with an expert ("good"), and with policies reaching
"around 80 %" ("normal") and "around 65 %" ("poor") of the expert's performance. We make the rule
well defined for any return scale with the normalized score

    score(R) = (R − R_random) / (R_expert − R_random)

(equal to "R / R_expert" when random returns are ≈ 0, and meaningful for negative returns), and hit
``normal`` = 0.80 and ``poor`` = 0.65 within ±0.03 (absolute) by ε-mixing the expert with uniform
random actions (:class:`~offmarl.collect.mixing.MixedPolicy`, per step and per agent) at a rate ε
found by bisection.

Calibration. ``R_random`` (ε = 1) and ``R_expert`` (ε = 0) and each bisection point are measured on
pilot rollouts of ``pilot_episodes`` (default 256) episodes that share one pilot seed
(``derive_seed(seed, "tier-pilot", attempt)``; run in ``pilot_env``, e.g. a copy of the env with more
sub-envs than a small dataset needs): common random numbers make the pilot score nearly monotone in ε.
Bisection stops when the pilot score is within ``tolerance / 3`` of the target (or after
16 halvings, keeping the closest point). The final dataset is then collected with that ε and its score,
against the pilot references, is *verified*: if it misses ``target ± tolerance`` the calibration is
repeated with 4× the pilot episodes, and as a last resort bisected on the final collection itself
(same seed and size, so the score it reaches is the dataset's); if that fails too, a ``RuntimeError``
is raised -- an off-tier dataset is never returned. The card's ``extra["tier"]`` records the rule, the
target, the rate, ``R_random``, ``R_expert``, the achieved score of the final dataset, the pilot size
and seed.

Departure: Tseng et al. used partially trained PPO policies for normal/poor; we have scripted experts,
so a lower tier is the expert diluted with random actions (the state distribution differs: our poor
data contains expert-like and random-like steps within one episode).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from offmarl.collect.mixing import MixedPolicy
from offmarl.collect.rollout import derive_seed, mean_return, rollout
from offmarl.data.dataset import MultiAgentDataset
from offmarl.envs.base import BatchedEnv
from offmarl.policies.base import JointPolicy

TIER_TARGETS: dict[str, float] = {"good": 1.0, "normal": 0.80, "poor": 0.65}
TIER_TOLERANCE = 0.03
PILOT_EPISODES = 256
MAX_HALVINGS = 16
SCORE_RULE = "(R - R_random) / (R_expert - R_random)"
MIXING_RULE = "per-step per-agent epsilon mixing: uniform random action with probability rate, else expert"

ExpertFactory = Callable[[int], JointPolicy]


def normalized_score(ret: float, r_random: float, r_expert: float) -> float:
    """``(ret − R_random) / (R_expert − R_random)``."""
    return (ret - r_random) / (r_expert - r_random)


@dataclass
class TierCalibration:
    """The outcome of a tier calibration (stored in ``card.extra["tier"]``)."""

    tier: str
    target: float
    tolerance: float
    rate: float
    r_random: float
    r_expert: float
    reference_episodes: int  # pilot size and seed of R_random / R_expert
    reference_seed: int
    calibration_score: float  # score the bisection reached on its calibration rollouts
    calibration_episodes: int
    calibration_seed: int
    calibrated_on: str  # "pilot" | "final" (the last resort: the final collection itself)
    rule: str = SCORE_RULE
    mixing: str = MIXING_RULE
    achieved_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mixed(env: BatchedEnv, make_expert: ExpertFactory, rate: float, seed: int) -> MixedPolicy:
    expert = make_expert(derive_seed(seed, "expert")) if rate < 1 else None
    return MixedPolicy(expert, env.spec, rate, derive_seed(seed, "mixing"))


def mixed_return(env: BatchedEnv, make_expert: ExpertFactory, rate: float, episodes: int, seed: int) -> float:
    """Mean per-agent episode return of the expert ε-mixed at ``rate`` over ``episodes`` (env seed ``seed``)."""
    policy = _mixed(env, make_expert, rate, seed)
    ds = rollout(env, policy, episodes, seed, state_only=True, progress=False, behavior={})
    return mean_return(ds)


def bisect_rate(score_at: Callable[[float], float], target: float, tolerance: float,
                max_halvings: int = MAX_HALVINGS) -> tuple[float, float]:
    """Find ε in [0, 1] with ``score_at(ε)`` within ``tolerance`` of ``target``; ``score_at`` decreases in ε.

    Returns ``(rate, score)``: the first point within tolerance, else the closest point seen."""
    lo, hi = 0.0, 1.0
    best_rate, best_score = 0.5, float("inf")
    for _ in range(max_halvings):
        mid = 0.5 * (lo + hi)
        score = score_at(mid)
        if abs(score - target) < abs(best_score - target):
            best_rate, best_score = mid, score
        if abs(score - target) <= tolerance:
            return mid, score
        if score > target:
            lo = mid
        else:
            hi = mid
    return best_rate, best_score


def _references(env: BatchedEnv, make_expert: ExpertFactory, episodes: int, seed: int) -> tuple[float, float]:
    r_random = mixed_return(env, make_expert, 1.0, episodes, seed)
    r_expert = mixed_return(env, make_expert, 0.0, episodes, seed)
    if not r_expert - r_random > 1e-6 * max(1.0, abs(r_expert), abs(r_random)):
        raise ValueError(f"env {env.spec.name!r}: the expert's mean return {r_expert:.4g} is not above the random "
                         f"policy's {r_random:.4g} (pilot of {episodes} episodes); quality tiers are undefined")
    return r_random, r_expert


def collect_tier(env: BatchedEnv, make_expert: ExpertFactory, tier: str, episodes: int, seed: int, *,
                 pilot_episodes: int = PILOT_EPISODES, tolerance: float = TIER_TOLERANCE,
                 state_only: bool = False, progress: bool = True, expert_name: str = "expert",
                 recipe: str | None = None, extra: dict[str, Any] | None = None,
                 pilot_env: BatchedEnv | None = None) -> MultiAgentDataset:
    """Collect ``episodes`` episodes of quality ``tier`` (module docstring).

    ``make_expert(seed) -> JointPolicy`` builds a fresh expert (it is rebuilt for every pilot so that each
    pilot starts from the same expert state). ``pilot_env`` (default ``env``) runs the pilot rollouts --
    a copy of the env with more sub-envs when the dataset itself is small. Raises ``RuntimeError`` when
    the tier cannot be reached."""
    pilot_env = env if pilot_env is None else pilot_env
    if tier not in TIER_TARGETS:
        raise ValueError(f"unknown quality tier {tier!r}; known: {', '.join(TIER_TARGETS)}")
    target = TIER_TARGETS[tier]
    # (episodes, where): two pilot calibrations, then the final collection itself (module docstring)
    attempts = [(pilot_episodes, "pilot"), (4 * pilot_episodes, "pilot"), (episodes, "final")]
    failures = []
    for attempt, (cal_episodes, on) in enumerate(attempts):
        if on == "pilot":
            cal_seed = derive_seed(seed, "tier-pilot", attempt)
            ref_episodes, ref_seed = cal_episodes, cal_seed
            r_random, r_expert = _references(pilot_env, make_expert, ref_episodes, ref_seed)
            cal_env = pilot_env
        else:
            cal_seed, cal_env = seed, env
        if tier == "good":
            rate, cal_score = 0.0, 1.0
        else:
            rate, cal_score = bisect_rate(
                lambda r: normalized_score(mixed_return(cal_env, make_expert, r, cal_episodes, cal_seed),
                                           r_random, r_expert),
                target, tolerance / 3)
        calibration = TierCalibration(
            tier=tier, target=target, tolerance=tolerance, rate=float(rate), r_random=r_random, r_expert=r_expert,
            reference_episodes=ref_episodes, reference_seed=ref_seed, calibration_score=float(cal_score),
            calibration_episodes=cal_episodes, calibration_seed=cal_seed, calibrated_on=on)
        behavior = {"policy": expert_name} if rate == 0 else {"policy": "mixed", "expert": expert_name,
                                                              "rate": float(rate), "mixing": MIXING_RULE}
        ds = rollout(env, _mixed(env, make_expert, rate, seed), episodes, seed, state_only=state_only,
                     progress=progress, behavior=behavior, quality_tier=tier, recipe=recipe, extra=extra)
        calibration.achieved_score = normalized_score(mean_return(ds), r_random, r_expert)
        ds.card.extra["tier"] = calibration.to_dict()
        if tier == "good" or abs(calibration.achieved_score - target) <= tolerance:
            return ds
        failures.append(f"rate {rate:.4f} (calibrated on {on} of {cal_episodes} episodes) "
                        f"gave {calibration.achieved_score:.3f}")
    raise RuntimeError(f"env {env.spec.name!r}: could not collect tier {tier!r} at normalized score "
                       f"{target:.2f} ± {tolerance:.2f} with {episodes} episodes: " + "; ".join(failures)
                       + " (the return is not monotone in the mixing rate, or the dataset is too small)")
