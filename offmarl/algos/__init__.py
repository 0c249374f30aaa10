"""Offline MARL algorithms, one file each, registered by name (``make_algo(name, spec, **overrides)``).

Importing this package imports every algorithm module so that the registry is complete.
"""

from offmarl.algos.base import AlgoConfig, Algorithm, get_algo_class, list_algos, load_algo, make_algo, register_algo

# Algorithm modules register themselves on import; add each new file here.
_ALGORITHM_MODULES = ("bc", "idt", "madt", "teacher", "distill", "qmix", "ma_cql", "ma_icq", "ma_bcq", "dec_mabcq",
                      "ippo", "mappo", "sit", "dm2", "sil", "ma_gail", "ma_airl", "finetune")

import importlib as _importlib  # noqa: E402

for _mod in _ALGORITHM_MODULES:
    _importlib.import_module(f"offmarl.algos.{_mod}")

__all__ = ["Algorithm", "AlgoConfig", "make_algo", "load_algo", "list_algos", "get_algo_class", "register_algo"]
