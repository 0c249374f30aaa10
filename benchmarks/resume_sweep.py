"""Kill -9 sweep: a run killed at any instant and resumed writes what an uninterrupted run writes.

For each family of learners one `offmarl train` command runs once uninterrupted (the reference), then
``--trials`` times killed with SIGKILL at a seeded instant drawn uniformly over the reference's wall time
and started again (``--resume`` when the kill left a checkpoint, else afresh). Each finished run is compared
with the reference by :func:`offmarl.train.run_dir.run_differences` (metrics.csv but for timing, the curve,
the best and final weights, the checkpoint series, stage hand-overs, eval.json's scores); the sweep also
counts temporary files the kill left behind once the run finished again, and files that do not parse.
The algorithm contract test runs three such kill points per algorithm in ``make test`` (with the kill
simulated in-process); this is the slow version with real kills of whole processes.

    .venv/bin/python benchmarks/resume_sweep.py [--trials 20] [--only bc,distill] [--out sweep.md]

Runs go to a temporary directory (``--keep DIR`` to keep them); every process runs with one torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OFFMARL = [sys.executable, "-m", "offmarl"]
COMMON = ["--quiet", "--threads", "1", "--seed", "3", "--eval-episodes", "4", "--checkpoint", "best"]
# family -> (dataset it needs or None, arguments after `offmarl train`); budgets give runs of ~20-40 s, most of it
# training (a process spends ~5 s importing), with several evaluations, checkpoints and (bc, ippo) series entries
FAMILIES = {
    "bc": ("fill_in", ["bc", "--steps", "1200", "--eval-every", "200", "--checkpoint-every", "150",
                       "--series-every", "400"]),
    "sequence (madt)": ("fill_in", ["madt", "--steps", "120", "--eval-every", "30", "--checkpoint-every", "20",
                                    "--set", "batch_size=16"]),
    "staged (distill)": ("fill_in", ["distill", "--steps", "120", "--eval-every", "30",
                                     "--checkpoint-every", "25", "--set", "batch_size=16"]),
    "three stages with a hand-over file each (sit)": ("fill_in", ["sit", "--steps", "240", "--eval-every", "60",
                                                                  "--checkpoint-every", "35", "--set", "members=3",
                                                                  "--set", "batch_size=16"]),
    "centralized value (qmix)": ("fill_in", ["qmix", "--steps", "600", "--eval-every", "150",
                                             "--checkpoint-every", "100"]),
    "decentralized value (dec_mabcq)": ("equal_space", ["dec_mabcq", "--steps", "500", "--eval-every", "100",
                                                        "--checkpoint-every", "80"]),
    "online PPO (ippo)": (None, ["ippo", "--env", "mpe_cn_3ls3l", "--num-envs", "8", "--steps", "12000",
                                 "--eval-every", "2000", "--checkpoint-every", "1600", "--series-every", "4000"]),
    "online value (qmix)": (None, ["qmix", "--env", "mpe_cn_3ls3l", "--num-envs", "8", "--steps", "3000",
                                   "--eval-every", "500", "--checkpoint-every", "400"]),
}


def collect(env: str, out: Path) -> Path:
    path = out / f"{env}.h5"
    if not path.exists():
        subprocess.run([*OFFMARL, "collect", env, "--episodes", "200", "--seed", "0", "--out", str(path)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def train(args: list[str], run: Path, kill_after: float | None = None, resume: bool = False) -> float:
    """Run `offmarl train ARGS --out RUN`; SIGKILL its process group after ``kill_after`` seconds. Returns the
    wall time (or the kill's instant)."""
    command = [*OFFMARL, "train", *args, *COMMON, "--out", str(run), *(["--resume"] if resume else [])]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = process.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err.decode()[-2000:]}")
    return time.perf_counter() - started


def unreadable_files(run: Path) -> list[str]:
    """Files of a finished run that do not parse (JSON) or load (weights-only torch)."""
    import torch

    bad = []
    for path in run.rglob("*"):
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".pt":
                torch.load(path, weights_only=True)
        except Exception as exc:  # noqa: BLE001 -- any failure to read is what the sweep counts
            bad.append(f"{path.relative_to(run)}: {type(exc).__name__}")
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="kills per family")
    parser.add_argument("--only", default="", help="comma-separated family name prefixes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill instants")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    parser.add_argument("--keep", default=None, help="keep the runs in this directory")
    args = parser.parse_args()
    from offmarl.train.run_dir import run_differences

    root = Path(args.keep or tempfile.mkdtemp(prefix="offmarl_resume_sweep_"))
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rng = np.random.default_rng(args.seed)
    only = [p for p in args.only.split(",") if p]
    lines = ["| family | trials | reference (s) | kill instants (s) | resumed from a checkpoint | equal to the "
             "reference | stale temporaries | unreadable files | differences |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for family, (dataset, train_args) in FAMILIES.items():
        if only and not any(family.startswith(p) for p in only):
            continue
        family_dir = root / family.split()[0] / train_args[0]
        shutil.rmtree(family_dir, ignore_errors=True)
        run_args = [*train_args, *(["--dataset", str(collect(dataset, root))] if dataset else [])]
        reference_time = train(run_args, family_dir / "reference")
        kills = np.sort(rng.uniform(0.1 * reference_time, 0.98 * reference_time, size=args.trials))
        resumed = equal = stale = unreadable = 0
        differences: dict[str, int] = {}
        for trial, instant in enumerate(kills):
            run = family_dir / f"killed{trial:02d}"
            train(run_args, run, kill_after=float(instant))
            checkpointed = (run / "checkpoints" / "last.pt").exists()
            train(run_args, run, resume=checkpointed)
            resumed += checkpointed
            found = run_differences(run, family_dir / "reference")
            equal += not found
            for name in found:
                differences[name] = differences.get(name, 0) + 1
            stale += len([p for p in run.rglob("*.tmp")])
            unreadable += len(unreadable_files(run))
            print(f"{family} trial {trial}: killed at {instant:.1f}s, {'resumed' if checkpointed else 'restarted'}, "
                  f"{'equal' if not found else found}", flush=True)
        listed = ", ".join(f"{name} ×{count}" for name, count in sorted(differences.items())) or "none"
        lines.append(f"| {family} | {args.trials} | {reference_time:.1f} | {kills.min():.1f}–{kills.max():.1f} | "
                     f"{resumed} | {equal} | {stale} | {unreadable} | {listed} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print()
    print(table)
    print(f"\nmachine: {platform.processor() or platform.machine()}, command: .venv/bin/python "
          f"benchmarks/resume_sweep.py --trials {args.trials}  ({time.strftime('%Y-%m-%d')})")
    if args.out:
        Path(args.out).write_text(table + "\n")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
