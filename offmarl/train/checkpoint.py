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

from offmarl.core.files import atomic_torch_save

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write checkpoint ``payload`` (see module docstring) atomically."""
    atomic_torch_save({"format": CHECKPOINT_FORMAT, **payload}, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a missing or unreadable file is a ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for torn or foreign files
        raise ValueError(f"checkpoint {path} cannot be read: {exc}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path} is not an offmarl checkpoint of format {CHECKPOINT_FORMAT}")
    return ckpt
