"""Atomic files and inter-process locks: the one implementation every writer of offmarl uses.

A file is written to a temporary file in the same directory, flushed to disk, then renamed over the
target (``os.replace`` is atomic on POSIX) and the directory entry is flushed too, so a process killed at
any instant leaves either the previous file or the new one, never a torn one.

:func:`to_safe` / :func:`atomic_torch_save` keep what ``torch.load(weights_only=True)`` accepts: tensors,
numbers, strings, booleans, None, lists, tuples and dicts; NumPy arrays and scalars are converted and
anything else is refused with the path of the offending key, so loading never unpickles objects.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without an exception, the file written
    there is flushed and renamed over ``path``. On an exception the temporary file is removed."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        _fsync(tmp)  # the rename must not become visible before the data is on disk
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        _fsync(path.parent)  # make the rename itself durable
    except OSError:  # some filesystems refuse to fsync a directory; the file is complete anyway
        pass


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (one trailing newline) atomically."""
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


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(to_safe(obj), path)`` atomically."""
    safe = to_safe(obj)
    with atomic_path(path) as tmp:
        torch.save(safe, tmp)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging directory beside ``path``; when the block ends without an exception, it takes
    ``path``'s place (the old directory is renamed aside, the new one renamed in, then the old removed).
    A kill inside the block leaves ``path`` as it was; only between the two renames is there no ``path``,
    and then ``<path>.old`` holds the previous one. On an exception the staging directory is removed."""
    path = Path(path)
    staging, aside = path.with_name(f"{path.name}.tmp"), path.with_name(f"{path.name}.old")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    if path.exists():
        path.rename(aside)
    staging.rename(path)
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: str | Path, wait_s: float | None = None) -> Iterator[bool]:
    """An exclusive ``flock`` on file ``path`` (created when missing) for the block.

    ``wait_s=None`` waits as long as it takes and yields True; otherwise it yields False when another
    process still holds the lock after ``wait_s`` seconds (the block then runs without the lock and must
    check). On a system without ``fcntl`` there is no lock and it yields True."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield True
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        if wait_s is None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.1)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
