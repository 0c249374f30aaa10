"""Atomic files under the faults of a cluster: the temporaries of killed writers are swept (a live writer's
stay), and a full disk is one clean error that leaves the previous file intact and no temporary behind."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import _toy_env
import h5py
import pytest
import torch
from typer.testing import CliRunner

from offmarl.cli import app
from offmarl.core import files
from offmarl.core.files import (
    LOCKLESS_STALE_S,
    atomic_path,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    sweep_stale_temporaries,
)
from offmarl.data.io import load_dataset, save_dataset
from offmarl.errors import DiskFullError

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


# ---- a full disk ----------------------------------------------------------------------------------------
def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def check_disk_full(error: BaseException, path: Path) -> None:
    message = str(error)
    assert isinstance(error, DiskFullError) and error.errno == errno.ENOSPC
    assert message.startswith(f"{path}: not written, the disk is full (No space left on device)")
    assert "\n" not in message


def test_a_full_disk_while_writing_json_a_checkpoint_or_a_dataset(tmp_path, monkeypatch):
    record, checkpoint, data = tmp_path / "eval.json", tmp_path / "last.pt", tmp_path / "x.h5"
    atomic_write_json(record, {"return_mean": 1.0})
    atomic_torch_save({"step": 10}, checkpoint)
    save_dataset(_toy_env.toy_dataset(episodes=4), data)

    def write_bytes_then_fill(self: Path, payload: bytes) -> int:
        with open(self, "wb") as f:
            f.write(payload[:3])
        raise no_space()

    def torch_save_then_fill(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04")  # torch's writer turns the OSError of its file into a RuntimeError
        try:
            raise no_space()
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    real_create = h5py.Group.create_dataset

    def create_dataset_then_fill(group, name, *args, **kwargs):
        if name == "terminals":  # a few fields in
            raise no_space()
        return real_create(group, name, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_bytes", write_bytes_then_fill)
        with pytest.raises(DiskFullError) as info:
            atomic_write_json(record, {"return_mean": 2.0})
    check_disk_full(info.value, record)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", torch_save_then_fill)
        with pytest.raises(DiskFullError) as info:
            atomic_torch_save({"step": 20}, checkpoint)
    check_disk_full(info.value, checkpoint)
    with monkeypatch.context() as patch:
        patch.setattr(h5py.Group, "create_dataset", create_dataset_then_fill)
        with pytest.raises(DiskFullError) as info:
            save_dataset(_toy_env.toy_dataset(episodes=8), data)
    check_disk_full(info.value, data)

    assert json.loads(record.read_text()) == {"return_mean": 1.0}
    assert torch.load(checkpoint, weights_only=True)["step"] == 10
    assert load_dataset(data).n_episodes == 4
    assert temporaries(tmp_path) == []

    with pytest.raises(RuntimeError, match="not a disk"):  # other failures pass through unchanged
        with atomic_path(record):
            raise RuntimeError("not a disk problem")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def only_line(output: str) -> str:
    lines = output.splitlines()
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.timeout(120)
def test_train_on_a_full_disk_stops_with_one_line_then_resumes_and_sweeps(tmp_path, monkeypatch):
    data = save_dataset(_toy_env.toy_dataset(episodes=20), tmp_path / "small.h5")
    run = tmp_path / "run"
    args = ["train", "bc", "--dataset", str(data), "--out", str(run), "--steps", "20", "--checkpoint-every", "10",
            "--eval-episodes", "0", "--quiet", "--set", "hidden=8", "--set", "history=2"]
    real_save, checkpoints = torch.save, []

    def save_until_the_disk_fills(obj, f, *rest, **kwargs):
        if ".last.pt." in str(getattr(f, "name", f)):
            checkpoints.append(obj["step"])
            if len(checkpoints) == 2:  # the step-20 checkpoint does not fit
                f.write(b"PK")
                raise no_space()
        return real_save(obj, f, *rest, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", save_until_the_disk_fills)
        result = invoke(*args)
    assert result.exit_code == 2 and checkpoints == [10, 20]
    checkpoint = run / "checkpoints" / "last.pt"
    assert only_line(result.output).startswith(f"error: {checkpoint}: not written, the disk is full")
    assert torch.load(checkpoint, weights_only=True)["step"] == 10
    assert "DiskFullError" in (run / "error.txt").read_text() and temporaries(run) == []

    # space freed; a write killed meanwhile left its temporary: --resume removes it and finishes the run
    stale = leave_a_killed_write(checkpoint)
    result = invoke(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert not stale.exists() and temporaries(run) == [] and not (run / "error.txt").exists()
    config = json.loads((run / "config.json").read_text())
    assert [r["step"] for r in config["resumes"]] == [10]
    assert torch.load(checkpoint, weights_only=True)["step"] == 20


@pytest.mark.timeout(120)
def test_collect_sweeps_what_a_killed_collect_left_and_a_full_disk_is_one_line(tmp_path, monkeypatch):
    out = tmp_path / "data" / "es.h5"
    args = ["collect", "equal_space", "--policy", "expert", "--num-envs", "4", "--out", str(out), "--episodes"]
    stale = leave_a_killed_write(out)
    result = invoke(*args, "4")
    assert result.exit_code == 0, result.output
    assert f"removed 1 temporary file(s) that killed writers left in {out.parent}: {stale.name}" in result.output
    assert temporaries(out.parent) == [] and load_dataset(out).n_episodes == 4

    real_create = h5py.Group.create_dataset

    def create_dataset_then_fill(group, name, *rest, **kwargs):
        if name == "rewards":
            raise no_space()
        return real_create(group, name, *rest, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(h5py.Group, "create_dataset", create_dataset_then_fill)
        result = invoke(*args, "6")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith(f"error: {out}: not written, the disk is full")
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.output
    assert load_dataset(out).n_episodes == 4 and temporaries(out.parent) == []


# ---- a real full disk: a 1 MB tmpfs in a user namespace ---------------------------------------------------
FILL_A_TMPFS = """
import json, os, sys
from pathlib import Path
import torch
from typer.testing import CliRunner
from offmarl.cli import app
from offmarl.core import files
from offmarl.core.files import atomic_torch_save, atomic_write_json
from offmarl.data.io import load_dataset
from offmarl.errors import DiskFullError

disk, report = Path(sys.argv[1]), {}
atomic_torch_save({"step": 10}, disk / "last.pt")
atomic_write_json(disk / "eval.json", {"return_mean": 1.0})
for name, write in (("checkpoint", lambda: atomic_torch_save({"w": torch.zeros(400_000)}, disk / "last.pt")),
                    ("json", lambda: atomic_write_json(disk / "eval.json", {"curve": list(range(300_000))}))):
    try:
        write()
        report[name] = "written"
    except DiskFullError as exc:
        report[name] = str(exc)
collect = ["collect", "equal_space", "--policy", "expert", "--num-envs", "64", "--out", str(disk / "es.h5")]
small = CliRunner().invoke(app, collect + ["--episodes", "20"])
big = CliRunner().invoke(app, collect + ["--episodes", "400"])  # about 1.5 MB
report.update(collect=[small.exit_code, big.exit_code, big.stderr.splitlines()[-1:]],
              previous=[torch.load(disk / "last.pt", weights_only=True)["step"],
                        json.loads((disk / "eval.json").read_text())["return_mean"],
                        load_dataset(disk / "es.h5").n_episodes],
              files=sorted(os.listdir(disk)))
print(json.dumps(report))
"""


@pytest.mark.timeout(180)
def test_a_real_full_disk_on_a_one_megabyte_tmpfs(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("no `unshare` to mount a small tmpfs in a user namespace")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = f"mount -t tmpfs -o size=1m tmpfs {disk}"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", mount], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"mounting a tmpfs in a user namespace is refused here: {probe.stderr.strip()}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", f'{mount} && exec "$0" -c "$1" "$2"', sys.executable,
                           FILL_A_TMPFS, str(disk)], capture_output=True, text=True, env=env, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    for name, path in (("checkpoint", disk / "last.pt"), ("json", disk / "eval.json")):
        assert report[name].startswith(f"{path}: not written, the disk is full (No space left on device)"), report
    small, big, last_line = report["collect"]
    assert (small, big) == (0, 2)
    assert last_line[0].startswith(f"error: {disk / 'es.h5'}: not written, the disk is full"), report
    assert report["previous"] == [10, 1.0, 20]
    assert report["files"] == ["es.h5", "eval.json", "last.pt"]  # no temporary left behind
