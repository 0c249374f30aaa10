"""Multi-agent datasets: the in-memory format, HDF5 I/O with validation, and samplers.

Nothing here runs an environment; the package imports only ``offmarl.envs.base`` and ``offmarl.errors``.
"""

from offmarl.data.dataset import FORMAT_VERSION, DatasetCard, MultiAgentDataset
from offmarl.data.io import dataset_info, load_dataset, save_dataset, save_per_agent_datasets
from offmarl.data.returns import ReturnToGoTracker, returns_to_go
from offmarl.data.sumtree import SumTree
from offmarl.data.validate import validate_dataset


def __getattr__(name):
    # The samplers need torch; import them on first use so `offmarl info` stays fast.
    if name in _SAMPLER_NAMES:
        import importlib

        return getattr(importlib.import_module("offmarl.data.samplers"), name)
    raise AttributeError(f"module 'offmarl.data' has no attribute {name!r}")


_SAMPLER_NAMES = ("TransitionSampler", "WindowSampler", "EpisodeSampler", "PrioritizedEpisodeSampler", "agent_slice")

__all__ = ["FORMAT_VERSION", "DatasetCard", "MultiAgentDataset", "dataset_info", "load_dataset", "save_dataset",
           "save_per_agent_datasets", "validate_dataset", "ReturnToGoTracker", "returns_to_go", "SumTree",
           *_SAMPLER_NAMES]
