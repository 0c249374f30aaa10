"""Behaviour policies by name: ``make_behavior_policy(name, spec, seed, **kwargs) -> JointPolicy``.

``random`` exists for every env. Scripted experts are registered per env as dotted paths (imported on
use), each a callable ``factory(spec, seed, **kwargs) -> JointPolicy``.
"""

from __future__ import annotations

import importlib
from typing import Any

from offmarl.envs.base import EnvSpec

# (env name, policy name) -> "module:callable"
_SCRIPTED: dict[tuple[str, str], str] = {
    ("equal_space", "expert"): "offmarl.policies.scripted.equal_space:EqualSpaceExpert",
    ("fill_in", "expert"): "offmarl.policies.scripted.fill_in:FillInExpert",
    ("grid_world", "expert"): "offmarl.policies.scripted.grid_world:GridWorldExpert",
    ("matrix_game", "behavior"): "offmarl.policies.scripted.matrix_game:MatrixGameBehavior",
    ("matrix_game", "expert"): "offmarl.policies.scripted.matrix_game:MatrixGameExpert",
    ("mpe_cn_3ls3l", "expert"): "offmarl.policies.scripted.mpe:CooperativeNavigationExpert",
    ("mpe_cn_4ls4l", "expert"): "offmarl.policies.scripted.mpe:CooperativeNavigationExpert",
    ("mpe_pp_3p1p", "expert"): "offmarl.policies.scripted.mpe:PredatorPreyExpert",
    ("highway", "expert"): "offmarl.policies.scripted.highway:HighwayExpert",
}


def register_behavior_policy(env_name: str, policy_name: str, factory: str) -> None:
    """Register ``factory`` ("module:callable") as behaviour policy ``policy_name`` of ``env_name``."""
    _SCRIPTED[(env_name, policy_name)] = factory


def behavior_policy_names(env_name: str) -> list[str]:
    return ["random"] + sorted(p for (e, p) in _SCRIPTED if e == env_name)


def make_behavior_policy(name: str, spec: EnvSpec, seed: int = 0, **kwargs: Any):
    """Build behaviour policy ``name`` for env ``spec`` (a :class:`~offmarl.policies.base.JointPolicy`)."""
    if name == "random":
        from offmarl.policies.random import RandomPolicy

        return RandomPolicy(spec, seed=seed)
    key = (spec.name, name)
    if key not in _SCRIPTED:
        raise KeyError(f"env {spec.name!r} has no behaviour policy {name!r}; known: {behavior_policy_names(spec.name)}")
    module, _, attr = _SCRIPTED[key].partition(":")
    return getattr(importlib.import_module(module), attr)(spec, seed=seed, **kwargs)


# SMAC maps on SMAX (offmarl.envs.smax): SMAX's heuristic for the allies (imports jax only when built).
def _register_smax_experts() -> None:
    from offmarl.envs.catalog import SMAX_MAPS

    for map_name in SMAX_MAPS:
        _SCRIPTED[(f"smac_{map_name}", "expert")] = "offmarl.policies.scripted.smax:SMAXHeuristicExpert"


_register_smax_experts()
