"""offmarl: offline and decentralized multi-agent reinforcement learning."""

__version__ = "0.1.0"


def make_env(name: str, num_envs: int = 1, seed: int | None = None, **kwargs):
    """Build a batched environment (see :func:`offmarl.envs.make_env`)."""
    from offmarl.envs import make_env as _make_env

    return _make_env(name, num_envs=num_envs, seed=seed, **kwargs)


__all__ = ["__version__", "make_env"]
