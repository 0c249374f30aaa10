"""Multi-agent datasets: the in-memory format, HDF5 I/O with validation, and samplers.

Nothing here runs an environment; the package imports only ``offmarl.envs.base`` and ``offmarl.errors``.
"""

from offmarl.data.dataset import FORMAT_VERSION, DatasetCard, MultiAgentDataset
from offmarl.data.io import dataset_info, load_dataset, save_dataset, save_per_agent_datasets
from offmarl.data.validate import validate_dataset

__all__ = ["FORMAT_VERSION", "DatasetCard", "MultiAgentDataset", "dataset_info", "load_dataset", "save_dataset",
           "save_per_agent_datasets", "validate_dataset"]
