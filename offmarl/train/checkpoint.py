"""Checkpoints that load with ``torch.load(weights_only=True)``, written atomically (``offmarl.core.files``).

A checkpoint (``run_dir/checkpoints/last.pt``) is one dict::

    {"format": 1, "step": int, "algo": algo.state_dict(), "sampler": sampler.state_dict(),
     "rng": global_rng_state(), "metrics": {"rows": int, "window": {...}, "wall_time": float},
     "curve": [[step, mean, std], ...], "win_curve": [[step, win rate], ...]}

Only tensors, numbers, strings, booleans, None, lists, tuples and dicts are stored
(:func:`offmarl.core.files.to_safe`), so loading never unpickles arbitrary objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from offmarl.algos.base import load_torch_file
from offmarl.core.files import atomic_torch_save
from offmarl.errors import CheckpointError

CHECKPOINT_FORMAT = 1
#: What resuming reads from every checkpoint (module docstring), and its type.
REQUIRED_KEYS: dict[str, type] = {"step": int, "algo": dict, "sampler": dict, "rng": dict, "metrics": dict,
                                  "curve": list}


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write checkpoint ``payload`` (see module docstring) atomically."""
    atomic_torch_save({"format": CHECKPOINT_FORMAT, **payload}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (:func:`offmarl.algos.base.load_torch_file`).

    A missing file is a ``FileNotFoundError``; a file refused as unsafe, unreadable, or not a checkpoint of
    :data:`CHECKPOINT_FORMAT` with its keys is a :class:`~offmarl.errors.CheckpointError` naming the file.
    """
    path = Path(path)
    ckpt = load_torch_file(path, "checkpoint", map_location=map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an offmarl checkpoint of format {CHECKPOINT_FORMAT}")
    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(ckpt.get(key), kind):
            raise CheckpointError(f"{path}: checkpoint key {key!r} is missing or not a {kind.__name__}")
    return ckpt
