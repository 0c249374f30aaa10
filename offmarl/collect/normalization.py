"""The inputs of normalized scores ``(R - R_random) / (R_reference - R_random)``, measured where data is made.

Normalized scores put tasks of different return scales on one axis, so that a benchmark can aggregate
over tasks (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice", section
"Recommendations and Tools for Reliable Evaluation"; Gorsane et al. 2022, "Towards a Standardised
Performance Evaluation Protocol for Cooperative MARL"). ``R`` is the
papers' metric, the per-agent average episode return (:func:`offmarl.collect.rollout.mean_return`):

* ``R_random``: the mean return of the uniform random policy over :data:`NORMALIZATION_EPISODES` episodes;
* ``R_reference``: the behaviour expert's mean return over the same episodes (one env seed for both:
  common random numbers) when the data has one -- the expert of a quality tier, of a composition or of a
  per-agent mixture, or the policy ``expert`` rolled out plainly; for data drawn from a policy pool, its
  best checkpoint's return as the pool measured it (:attr:`offmarl.collect.pools.Pool.best_return`);
  otherwise (random data, a scripted behaviour policy that is not the expert) the best episode of the
  dataset (``card.return_max``): what the data shows to be reachable.

Both are measured by :func:`offmarl.collect.tiers.mixed_return` (the expert ε-mixed at rate 1, i.e. the
uniform random policy, and at rate 0), the function a quality tier's calibration measures its references
with; a tier dataset reuses its calibration's (``card.extra["tier"]``) instead of measuring them again.
Dataset cards of format version 2 hold them (``random_return``, ``reference_return``), with
``card.extra["normalization"]`` saying how they were measured. Online tasks have no dataset: their
measurement is cached per environment (:func:`offmarl.collect.recipes.env_normalization`), with the
env's scripted expert as the reference when it has one.
"""

from __future__ import annotations

from typing import Any, Sequence

from offmarl.collect.rollout import derive_seed
from offmarl.collect.tiers import ExpertFactory, mixed_return
from offmarl.data.dataset import MultiAgentDataset
from offmarl.envs.base import BatchedEnv

NORMALIZATION_EPISODES = 256
REFERENCE_EXPERT = "behaviour expert"
REFERENCE_BEST_EPISODE = "best episode in the dataset"


def measure_returns(env: BatchedEnv, make_expert: ExpertFactory | None, episodes: int,
                    seed: int) -> tuple[float, float | None, int]:
    """``(R_random, R_expert or None, env seed)`` over ``episodes`` episodes of ``env`` (module docstring);
    the seed is derived from ``seed`` so the measurement never shares the data's episodes."""
    env_seed = derive_seed(seed, "normalization")
    random_return = mixed_return(env, make_expert, 1.0, episodes, env_seed)
    expert_return = None if make_expert is None else mixed_return(env, make_expert, 0.0, episodes, env_seed)
    return random_return, expert_return, env_seed


def record_normalization(datasets: Sequence[MultiAgentDataset], random_return: float, expert_return: float | None,
                         measured: dict[str, Any]) -> None:
    """Write ``random_return`` / ``reference_return`` into each card (the best episode of that dataset when
    there is no expert) and ``extra["normalization"]``: ``measured`` (episodes, seed, ...) and the reference."""
    for ds in datasets:
        ds.card.random_return = float(random_return)
        ds.card.reference_return = float(ds.card.return_max if expert_return is None else expert_return)
        ds.card.extra["normalization"] = {
            **measured, "reference": REFERENCE_BEST_EPISODE if expert_return is None else REFERENCE_EXPERT}
