"""Every bad file the CLI reads -- checkpoint, saved model, run directory, dataset path -- is one line
``error: <file>: ...`` on stderr and exit code 2, never a traceback; an unsafe pickle never runs.

Bad datasets (fields, cards, links) are covered by ``test_data_validation.py`` and ``test_fuzz_dataset.py``.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import _toy_env
import pytest
import torch
from typer.testing import CliRunner

from offmarl.cli import app
from offmarl.data.io import save_dataset

runner = CliRunner()
TINY_BC = ["--set", "hidden=8", "--set", "history=2", "--set", "batch_size=4"]


class Payload:
    """Unpickling this creates the file ``marker``: proof that a pickle ran code."""

    marker = ""

    def __reduce__(self):
        return open, (self.marker, "w")


def malicious(marker: Path) -> Payload:
    payload = Payload()
    payload.marker = str(marker)
    return payload


def break_file(path: Path, how: str, marker: Path) -> None:
    """Replace the torch file ``path`` with a bad one."""
    good = path.read_bytes()
    path.unlink()
    if how == "malicious":
        torch.save({"format": 1, "step": malicious(marker)}, path)
    elif how == "malicious_raw_pickle":
        path.write_bytes(pickle.dumps(malicious(marker), protocol=2))
    elif how == "raw_pickle":
        path.write_bytes(pickle.dumps({"format": 1, "step": 3}))
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 4)
    elif how == "torn":
        path.write_bytes(good[: len(good) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "directory":
        path.mkdir()
    else:
        raise AssertionError(how)


EXPECTED = {"malicious": "refused as unsafe", "malicious_raw_pickle": "refused as unsafe",
            "raw_pickle": "unreadable", "garbage": "unreadable", "torn": "unreadable", "empty": "unreadable",
            "directory": "is a directory, not a file"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return save_dataset(_toy_env.toy_dataset(episodes=6, seed=0), tmp_path_factory.mktemp("data") / "toy.h5")


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory) -> Path:
    """A finished run: model/algo.pt and checkpoints/last.pt."""
    run = tmp_path_factory.mktemp("runs") / "bc"
    result = runner.invoke(app, ["train", "bc", "--dataset", str(dataset), "--out", str(run), "--steps", "2",
                                 "--checkpoint-every", "1", "--eval-episodes", "0", "--quiet", *TINY_BC])
    assert result.exit_code == 0, result.output
    return run


def one_line_error(result, *fragments: str) -> str:
    """The CLI failed with exit code 2 and one stderr line holding every fragment; returns the line."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def invoke_quietly(args: list[str]):
    """Invoke the CLI and check that torch's warnings about the bad file were silenced."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(app, args)
    noisy = [str(w.message) for w in caught if "pickle" in str(w.message) or "weights_only" in str(w.message)]
    assert not noisy, noisy
    return result


@pytest.mark.parametrize("how", sorted(EXPECTED))
@pytest.mark.parametrize("target", ["checkpoint, --resume", "checkpoint, eval", "model file, eval"])
def test_bad_checkpoint_or_model_file(tmp_path: Path, trained: Path, dataset: Path, how: str, target: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    marker = tmp_path / "payload_ran"
    what = target.split(",")[0]
    if what == "checkpoint":
        bad = run / "checkpoints" / "last.pt"
        shutil.rmtree(run / "model")  # eval falls back to the last checkpoint of an unfinished run
    else:
        bad = run / "model" / "algo.pt"
    break_file(bad, how, marker)
    if target.endswith("--resume"):
        args = ["train", "bc", "--dataset", str(dataset), "--out", str(run), "--steps", "3", "--resume",
                "--eval-episodes", "0", "--quiet", *TINY_BC]
    else:
        args = ["eval", str(run), "--episodes", "1"]
    result = invoke_quietly(args)
    one_line_error(result, f"error: {bad}: {what} ", EXPECTED[how])
    assert not marker.exists(), "the pickle's payload ran"


def test_checkpoint_without_its_keys(tmp_path: Path, trained: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    shutil.rmtree(run / "model")
    checkpoint = run / "checkpoints" / "last.pt"
    state = torch.load(checkpoint, weights_only=True)
    del state["sampler"]
    torch.save(state, checkpoint)
    one_line_error(runner.invoke(app, ["eval", str(run)]), f"{checkpoint}: checkpoint key 'sampler' is missing")
    torch.save([1, 2], checkpoint)
    one_line_error(runner.invoke(app, ["eval", str(run)]), f"{checkpoint}: not an offmarl checkpoint of format 1")


def test_model_file_of_another_algorithm(tmp_path: Path, trained: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    weights = run / "model" / "algo.pt"
    torch.save({"nets": {"nothing": torch.zeros(1)}}, weights)
    one_line_error(runner.invoke(app, ["eval", str(run)]), f"{weights}: model file is not the state of 'bc'")
    torch.save([1, 2], weights)
    one_line_error(runner.invoke(app, ["eval", str(run)]), f"{weights}: model file holds a list")


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b'{"algo": "bc"}', b'{"algo": "nope"}'])
def test_bad_algo_json(tmp_path: Path, trained: Path, content: bytes) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "model" / "algo.json").write_bytes(content)
    one_line_error(runner.invoke(app, ["eval", str(run)]), f"{run / 'model' / 'algo.json'}: saved algorithm's "
                                                           "algo.json is not valid")


def test_directories_and_files_in_each_others_place(tmp_path: Path, dataset: Path) -> None:
    folder = tmp_path / "some_dir"
    folder.mkdir()
    one_line_error(runner.invoke(app, ["train", "bc", "--dataset", f"{folder}/", "--out", str(tmp_path / "r"),
                                       "--steps", "1", "--quiet"]), f"{folder}: is a directory, not a dataset file")
    one_line_error(runner.invoke(app, ["info", str(folder)]), f"{folder}: is a directory, not a dataset file")
    one_line_error(runner.invoke(app, ["eval", str(dataset)]), f"{dataset} is not a run directory")


def test_the_real_command_prints_one_line_for_an_unsafe_model_file(tmp_path: Path, trained: Path) -> None:
    # in a fresh process: warnings print to stderr there (under CliRunner pytest records them)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    marker = tmp_path / "payload_ran"
    break_file(run / "model" / "algo.pt", "malicious_raw_pickle", marker)
    tests = str(Path(__file__).resolve().parent)
    code = f"import sys; sys.path.insert(0, {tests!r}); import _toy_env; from offmarl.cli import main; main()"
    proc = subprocess.run([sys.executable, "-c", code, "eval", str(run)], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"error: {run / 'model' / 'algo.pt'}: model file "
                                                                   "refused as unsafe"), proc.stderr
    assert not marker.exists()
