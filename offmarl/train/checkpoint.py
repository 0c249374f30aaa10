"""Atomic files and checkpoints that load with ``torch.load(weights_only=True)``.

Every file the fit loop writes is written to a temporary file in the same directory, flushed to disk,
then renamed over the target (``os.replace`` is atomic on POSIX), so a run killed at any instant leaves
either the previous file or the new one, never a torn one.

A checkpoint (``run_dir/checkpoints/last.pt``) is one dict::

    {"format": 1, "step": int, "algo": algo.state_dict(), "sampler": sampler.state_dict(),
     "rng": global_rng_state(), "metrics": {"rows": int, "window": {...}, "wall_time": float},
     "curve": [[step, mean, std], ...]}

Only tensors, numbers, strings, booleans, None, lists, tuples and dicts are stored; :func:`to_safe`
converts NumPy arrays and scalars and rejects anything else with the path of the offending key, so
loading never unpickles arbitrary objects.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_FORMAT = 1


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(to_safe(obj), path)`` through a temporary file and a rename."""
    safe = to_safe(obj)
    _atomic_write(Path(path), lambda f: torch.save(safe, f))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    data = text.encode("utf-8")
    _atomic_write(Path(path), lambda f: f.write(data))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def to_safe(obj: Any, where: str = "") -> Any:
    """``obj`` with NumPy arrays → tensors and NumPy scalars → Python numbers; anything that
    ``torch.load(weights_only=True)`` would refuse raises ``TypeError`` naming its key path."""
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint key {where or '<root>'}: dict key {key!r} is not a str or int")
        return {k: to_safe(v, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [to_safe(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)  # torch.Size becomes a plain tuple
    raise TypeError(f"checkpoint value {where or '<root>'} has type {type(obj).__name__}, which a "
                    "weights_only checkpoint cannot hold (use tensors, numbers, strings, lists, dicts)")


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
