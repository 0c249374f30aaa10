"""Atomic files and inter-process locks: the one implementation every writer of offmarl uses.

A file is written to a temporary file in the same directory, flushed to disk, then renamed over the
target (``os.replace`` is atomic on POSIX) and the directory entry is flushed too, so a process killed at
any instant leaves either the previous file or the new one, never a torn one.

What a killed writer leaves is its temporary file ``.<name>.<token>.tmp``; :func:`sweep_stale_temporaries`
removes those whose writer is gone, and only those (the temporary's writer lock, below, tells).

A write that fails because the file system is full (or the quota used up) raises :class:`DiskFullError`,
one line naming the file, after removing its temporary file: what was at the path stays as it was.

:func:`to_safe` / :func:`atomic_torch_save` keep what ``torch.load(weights_only=True)`` accepts: tensors,
numbers, strings, booleans, None, lists, tuples and dicts; NumPy arrays and scalars are converted and
anything else is refused with the path of the offending key, so loading never unpickles objects.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from offmarl.errors import DiskFullError

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: no locks, and the sweeper then removes nothing
    fcntl = None  # type: ignore[assignment]

#: errno values that mean "no room to write": no space left on the device, disk quota exceeded.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
#: A temporary file of :func:`atomic_path` (``.<name>.<token>.tmp``) and the suffix of its writer lock.
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp$")
_WRITER_LOCK = ".lock"
#: errno of ``flock`` where a file system does not support it
_NO_FLOCK = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)
#: A temporary without a writer lock comes from offmarl before writer locks (its writer's liveness is
#: unknowable); it counts as stale once nothing has written to it for this long.
LOCKLESS_STALE_S = 3600.0


def _disk_full_errno(exc: BaseException | None) -> int | None:
    """The errno of the "no room" OSError ``exc`` is or arose from (torch reports a full disk as a
    RuntimeError raised while handling it), else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return exc.errno
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def _naming_a_full_disk(path: Path) -> Iterator[None]:
    """Turn a "no room" failure of the block into :class:`DiskFullError` naming ``path``."""
    try:
        yield
    except DiskFullError:
        raise  # a nested writer already named its file
    except BaseException as exc:
        code = _disk_full_errno(exc)
        if code is None:
            raise
        raise DiskFullError(path, code) from exc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _writer_lock(tmp: Path) -> Path:
    return tmp.with_name(tmp.name + _WRITER_LOCK)


def _hold(fd: int) -> bool:
    """Take the writer lock on ``fd``, waiting for it; False where the file system has no ``flock`` (the
    write goes on unguarded, and no sweep there can take the lock either, so none removes the temporary)."""
    if fcntl is None:  # pragma: no cover - non-POSIX
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        if exc.errno in _NO_FLOCK:
            return False
        raise
    return True


@contextlib.contextmanager
def _claimed_temporary(path: Path) -> Iterator[Path]:
    """A fresh temporary name beside ``path``, its writer lock held by this process for the block.

    The lock file ``<temporary>.lock`` is created and ``flock``-ed before the temporary exists and removed
    after it is gone (renamed into place or deleted), so a temporary whose lock is free has no writer: the
    kernel releases the lock of a process however it dies. The temporary itself is not locked because the
    writers open it themselves (HDF5 even takes its own lock on it)."""
    while True:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        fd = os.open(_writer_lock(tmp), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            if not _hold(fd) or os.fstat(fd).st_nlink:
                break
        except BaseException:
            os.close(fd)
            _writer_lock(tmp).unlink(missing_ok=True)
            raise
        os.close(fd)  # a sweeper took the fresh lock file before this flock and removed it: draw again
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
        _writer_lock(tmp).unlink(missing_ok=True)
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without an exception, the file written
    there is flushed and renamed over ``path``. On an exception the temporary file is removed, and a full
    disk becomes :class:`DiskFullError` naming ``path``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not a file path")
    with _naming_a_full_disk(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with _claimed_temporary(path) as tmp:
            yield tmp
            _fsync(tmp)  # the rename must not become visible before the data is on disk
            os.replace(tmp, path)
    try:
        _fsync(path.parent)  # make the rename itself durable
    except OSError:  # some filesystems refuse to fsync a directory; the file is complete anyway
        pass


def sweep_stale_temporaries(directory: str | Path, recursive: bool = False) -> list[Path]:
    """Remove from ``directory`` (and its subdirectories with ``recursive``) the temporary files of
    :func:`atomic_path` writers that are gone -- killed mid-write -- with their lock files; return the
    temporaries removed.

    A temporary whose writer lock this call can take has no writer (:func:`_claimed_temporary`); it is
    removed under that lock. One whose lock another process holds belongs to a live writer (a second bench on
    the same output directory, a run training) and stays, wherever that writer runs, as long as the file
    system honours ``flock`` (as the run locks need). On NFS, whose ``flock`` is a POSIX lock that does not
    conflict within one process, a process must not sweep a directory while it writes there (none does: the
    sweeps run when a run, a collect or a bench starts). A temporary without a lock file (offmarl before
    writer locks) is removed once nothing has written to it for :data:`LOCKLESS_STALE_S` seconds."""
    directory = Path(directory)
    if fcntl is None or not directory.is_dir():
        return []
    if recursive:
        found = [(Path(root), names) for root, _, names in os.walk(directory)]  # skips folders that vanish
    else:
        found = [(directory, [entry.name for entry in os.scandir(directory) if not entry.is_dir()])]
    temporaries = sorted({root / name.removesuffix(_WRITER_LOCK) for root, names in found for name in names
                          if _TEMPORARY.match(name.removesuffix(_WRITER_LOCK))})
    removed = []
    for tmp in temporaries:
        try:
            if _remove_if_stale(tmp):
                removed.append(tmp)
        except OSError:  # e.g. another user's file: clearing up must never stop the command that starts
            continue
    return removed


def _remove_if_stale(tmp: Path) -> bool:
    """Remove ``tmp`` and its lock file when its writer is gone; True when ``tmp`` itself was removed."""
    lock = _writer_lock(tmp)
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:  # the lock file goes last: a writer that had one is done with ``tmp``
        try:
            if time.time() - tmp.stat().st_mtime < LOCKLESS_STALE_S:
                return False
            tmp.unlink()
        except FileNotFoundError:
            return False
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its writer is alive (or this file system cannot tell)
            return False
        try:
            tmp.unlink()
            removed = True
        except FileNotFoundError:  # a writer killed before it created its temporary left only the lock
            removed = False
        lock.unlink(missing_ok=True)
        return removed
    finally:
        os.close(fd)


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
    # through a Python file object: a full disk then surfaces as its OSError (ENOSPC) rather than only as
    # the RuntimeError of torch's own writer
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(safe, handle)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging directory beside ``path``; when the block ends without an exception, it takes
    ``path``'s place (the old directory is renamed aside, the new one renamed in, then the old removed).
    A kill inside the block leaves ``path`` as it was; only between the two renames is there no ``path``,
    and then ``<path>.old`` holds the previous one. On an exception the staging directory is removed (and a
    full disk is a :class:`DiskFullError` naming the file that did not fit)."""
    path = Path(path)
    staging, aside = path.with_name(f"{path.name}.tmp"), path.with_name(f"{path.name}.old")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with _naming_a_full_disk(staging):
            staging.mkdir(parents=True)
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
    if fcntl is None:  # pragma: no cover - non-POSIX
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


def offmarl_home() -> Path:
    """Where offmarl caches what it builds (recipe datasets, policy pools, compiled SMAX steps):
    ``$OFFMARL_HOME``, default ``~/.cache/offmarl``."""
    return Path(os.environ.get("OFFMARL_HOME") or "~/.cache/offmarl").expanduser()
