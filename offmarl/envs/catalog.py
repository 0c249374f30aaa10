"""The list of environments offmarl knows. Factories are dotted paths, imported only when built."""

from offmarl.envs.registry import register_env

# Native environments (numpy, vectorized over B) are registered here as they land.
