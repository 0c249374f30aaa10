"""Batched multi-agent environments (native numpy ones and adapters) behind one contract."""

# Each native env module registers itself on import (cheap: numpy only).
from offmarl.envs import catalog as _catalog  # noqa: F401,E402
from offmarl.envs.base import BatchedEnv, EnvSpec, TimeStep
from offmarl.envs.registry import EnvSource, env_spec, get_env_entry, list_envs, make_env, register_env


def pettingzoo_env(name: str, **kwargs):
    """A PettingZoo ``ParallelEnv`` view of environment ``name`` (one sub-env)."""
    from offmarl.envs.pettingzoo_adapter import PettingZooParallelEnv

    return PettingZooParallelEnv(name, **kwargs)


__all__ = ["BatchedEnv", "EnvSource", "EnvSpec", "TimeStep", "make_env", "env_spec", "register_env", "list_envs",
           "get_env_entry", "pettingzoo_env"]
