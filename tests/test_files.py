"""Atomic files under the faults of a cluster: the temporaries of killed writers are swept (a live writer's
stay)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from offmarl.core import files
from offmarl.core.files import (
    LOCKLESS_STALE_S,
    atomic_path,
    atomic_write_bytes,
    sweep_stale_temporaries,
)

torch.set_num_threads(1)

# Starts an atomic write of each file named on its command line, says so, and never finishes them.
WRITER = """
import contextlib, sys, time
from offmarl.core.files import atomic_path
with contextlib.ExitStack() as writes:
    for target in sys.argv[1:]:
        writes.enter_context(atomic_path(target)).write_bytes(b"half a file")
    print("writing", flush=True)
    time.sleep(600)
"""


def start_writer(*targets: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, *map(str, targets)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def temporaries(directory: Path) -> list[str]:
    """The names of every temporary file and writer lock under ``directory``."""
    return sorted(p.name for p in Path(directory).rglob(".*") if ".tmp" in p.name)


def leave_a_killed_write(target: Path) -> Path:
    """What a writer SIGKILLed inside ``atomic_path(target)`` leaves (the first test shows it): its temporary
    and its writer lock, which no process holds any more. Returns the temporary."""
    tmp = target.with_name(f".{target.name}.0123456789ab.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"half a file")
    tmp.with_name(tmp.name + ".lock").touch()
    return tmp


# ---- stale temporaries ----------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_a_killed_writers_temporary_is_swept_and_a_live_writers_stays(tmp_path):
    checkpoint, record = tmp_path / "run" / "checkpoints" / "last.pt", tmp_path / "run" / "eval.json"
    atomic_write_bytes(checkpoint, b"the previous checkpoint")
    killed, live = start_writer(checkpoint), start_writer(record)
    try:
        assert killed.stdout.readline() == "writing\n" and live.stdout.readline() == "writing\n"
        assert sweep_stale_temporaries(tmp_path, recursive=True) == []  # both writers alive: nothing to remove
        killed_tmp = [p for p in checkpoint.parent.iterdir() if p.name.endswith(".tmp")]
        assert len(killed_tmp) == 1 and len(temporaries(tmp_path)) == 4  # a temporary and a lock each
        killed.kill()
        killed.wait()
        assert sweep_stale_temporaries(tmp_path, recursive=True) == killed_tmp
        assert checkpoint.read_bytes() == b"the previous checkpoint"
        assert [name.startswith(".eval.json.") for name in temporaries(tmp_path)] == [True, True]  # the live one's
    finally:
        for writer in (killed, live):
            writer.kill()
            writer.wait()
    assert len(sweep_stale_temporaries(tmp_path, recursive=True)) == 1 and temporaries(tmp_path) == []
    assert not record.exists()


def test_a_writer_whose_fresh_lock_file_a_sweeper_took_draws_another_name(tmp_path, monkeypatch):
    """The one race: a sweeper finds a writer's lock file after its creation but before the writer's flock
    (free, no temporary yet) and removes it. The writer sees its lock file gone and draws another name, so
    its temporary is never unguarded."""
    real_flock, swept = files.fcntl.flock, []

    def sweep_first(fd: int, operation: int) -> None:
        if operation == files.fcntl.LOCK_EX and not swept:  # the writer's first lock, not the sweeper's
            swept.append(sweep_stale_temporaries(tmp_path))
        real_flock(fd, operation)

    monkeypatch.setattr(files, "fcntl", SimpleNamespace(flock=sweep_first, LOCK_EX=files.fcntl.LOCK_EX,
                                                        LOCK_NB=files.fcntl.LOCK_NB))
    with atomic_path(tmp_path / "eval.json") as tmp:
        assert swept == [[]] and tmp.with_name(tmp.name + ".lock").exists()
        tmp.write_bytes(b"{}")
        assert sweep_stale_temporaries(tmp_path) == [] and tmp.exists()
    assert (tmp_path / "eval.json").read_bytes() == b"{}" and temporaries(tmp_path) == []


def test_on_a_file_system_without_flock_writes_work_and_no_temporary_is_taken(tmp_path, monkeypatch):
    def unsupported(fd: int, operation: int) -> None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))  # e.g. Lustre mounted without flock

    monkeypatch.setattr(files, "fcntl", SimpleNamespace(flock=unsupported, LOCK_EX=files.fcntl.LOCK_EX,
                                                        LOCK_NB=files.fcntl.LOCK_NB))
    with atomic_path(tmp_path / "eval.json") as tmp:
        tmp.write_bytes(b"{}")
        assert sweep_stale_temporaries(tmp_path) == [] and tmp.exists()  # its writer cannot be told dead
    assert (tmp_path / "eval.json").read_bytes() == b"{}" and temporaries(tmp_path) == []


def test_a_temporary_without_a_writer_lock_goes_once_nothing_wrote_to_it_for_an_hour(tmp_path):
    """Such temporaries come from offmarl before writer locks, whose writers cannot be asked if they live."""
    recent, old = tmp_path / ".a.h5.0123456789ab.tmp", tmp_path / ".b.h5.ba9876543210.tmp"
    for path in (recent, old):
        path.write_bytes(b"half a file")
    an_hour_ago = time.time() - LOCKLESS_STALE_S - 60
    os.utime(old, (an_hour_ago, an_hour_ago))
    (tmp_path / ".lock").touch()  # a run lock, and files that only look alike, are not temporaries
    (tmp_path / ".c.h5.not-a-token.tmp").touch()
    assert sweep_stale_temporaries(tmp_path) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.h5.0123456789ab.tmp", ".c.h5.not-a-token.tmp", ".lock"]
