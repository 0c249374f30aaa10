"""Training speed of offmarl's Decision Transformer vs ``transformers.DecisionTransformerModel``.

    .venv/bin/python benchmarks/dt_speed.py [--quick] [--steps 1000] [--seeds 3] [--precision fp32[,bf16]]
                                            [--threads N] [--json out.json]

Both models get kzl's configuration (hidden 128, 3 layers, 1 head, 4x MLP, ReLU, dropout 0.1, K = 20,
batch 64) and are trained from the same seed on the same stream of batches: K-step windows (left-padded
like kzl's ``get_batch``, about a fifth of them) of a synthetic continuous-control dataset (11-d states,
3-d actions from a noisy tanh-linear expert in a linear system, returns-to-go of r = -|s|^2 / 10). Loss:
MSE of the tanh-squashed action over real positions (kzl). Optimizer for both: AdamW (lr 1e-4, weight
decay 1e-4, fused), gradient-norm clip 0.25; no warm-up. ``--precision bf16`` runs forward and loss
under ``torch.autocast("cpu", torch.bfloat16)`` (weights and optimizer stay fp32), as ``offmarl train
--precision bf16`` does. The default is both precisions, or fp32 alone on a CPU without native bf16
(AVX512-BF16 or AMX), where oneDNN emulates bf16 matmuls far slower than fp32 (a bf16 run there measures
the emulation, and the bf16 goals cannot be met).

Both models, in every precision run, train in the same process, one step of each in turn on the same
batch (the order rotating), so a changing machine load (a shared 2-core CPU) affects all of them alike,
the cross-precision ratio (our bf16 vs HF fp32) included. Speed is measured in steps per second of the
process's CPU time (``time.process_time``), which other processes' load does not inflate; with the
default ``--threads 1`` that is the single-core training speed (wall-clock steps/s are printed too).
Reported per (model, precision): steps/s (median over seeds, timed after 10 warm-up steps),
the mean loss over the last 100 steps (mean over seeds), and the achieved fraction of this CPU's matmul
peak: FLOPs of one training step (forward + backward, counted by ``torch.utils.flop_counter``) x steps/s
/ the peak GFLOP/s of a large matmul (``torch.matmul`` or oneDNN's linear, the faster) at the same
precision (the better of a measurement before and one after the runs). Checks: ours >= 1.5x HF at the
same precision; our bf16 >= 3x HF fp32; equal loss: the mean over seeds of the last-100-step mean loss
within 5 % of HF's (per-seed gaps are printed too: with different dropout draws single seeds differ by a few %).

Both models are kzl's layout with one linear action head (offmarl's ``feature_dim=0``; its default
MLP head would add a hidden layer), initialised alike (GPT-2's N(0, 0.02); offmarl's library default for
the head is ``torch.nn.Linear``'s, as kzl, so the benchmark re-initialises it). Remaining differences:
offmarl zeroes the inputs of pad steps, leaves out the last action token and skips the non-o_t rows of
the last block (same outputs, fewer FLOPs); HF adds a learned position-0 embedding to every token and
also predicts states and returns (unused, as in kzl).
``--quick``: 300 steps, 1 seed (the loss check then uses the last 100 of 300 steps).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable
from unittest import mock

import numpy as np
import torch

from offmarl.core.machine import cpu_name
from offmarl.train.loop import native_bf16

STATE_DIM, ACT_DIM, K, BATCH, HIDDEN, LAYERS, HEADS, MAX_EP_LEN = 11, 3, 20, 64, 128, 3, 1, 1000
LR, WD, CLIP, DROPOUT = 1e-4, 1e-4, 0.25, 0.1


# ---- data ------------------------------------------------------------------------------------------
class SyntheticWindows:
    """A fixed synthetic dataset (seeded) and a seeded stream of K-step windows over it."""

    def __init__(self, seed: int, episodes: int = 200, length: int = 100):
        rng = np.random.default_rng(1000 + seed)
        A = np.eye(STATE_DIM) * 0.95 + rng.normal(scale=0.03, size=(STATE_DIM, STATE_DIM))
        Bm = rng.normal(scale=0.3, size=(STATE_DIM, ACT_DIM))
        W = rng.normal(scale=0.5, size=(ACT_DIM, STATE_DIM))
        s = rng.normal(size=(episodes, STATE_DIM))
        states, actions, rewards = [], [], []
        for _ in range(length):
            a = np.clip(np.tanh(-s @ W.T) + rng.normal(scale=0.1, size=(episodes, ACT_DIM)), -1, 1)
            states.append(s)
            actions.append(a)
            rewards.append(-(s ** 2).sum(axis=1) / 10)
            s = s @ A.T + a @ Bm.T + rng.normal(scale=0.05, size=s.shape)
        self.states = np.stack(states, 1).astype(np.float32)  # [E, L, S]
        self.actions = np.stack(actions, 1).astype(np.float32)  # [E, L, A]
        r = np.stack(rewards, 1)
        self.rtg = (np.cumsum(r[:, ::-1], axis=1)[:, ::-1] / 100).astype(np.float32)  # [E, L]
        self.episodes, self.length = episodes, length
        self.rng = np.random.default_rng(seed)

    def sample(self) -> dict[str, torch.Tensor]:
        e = self.rng.integers(0, self.episodes, BATCH)
        end = self.rng.integers(0, self.length, BATCH)
        end = np.where(self.rng.random(BATCH) < 0.8, np.maximum(end, K - 1), end)  # ~1/5 of windows padded
        idx = end[:, None] + np.arange(K) - (K - 1)  # [B, K]
        mask = idx >= 0
        idx = np.maximum(idx, 0)
        take = lambda x: np.where(mask.reshape(mask.shape + (1,) * (x.ndim - 2)), x[e[:, None], idx], 0)  # noqa: E731
        return {"states": torch.from_numpy(take(self.states)), "actions": torch.from_numpy(take(self.actions)),
                "rtg": torch.from_numpy(take(self.rtg[..., None])),
                "timesteps": torch.from_numpy(np.where(mask, idx, 0)),
                "mask": torch.from_numpy(mask)}


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    per_step = (pred.float() - target).pow(2).mean(-1)  # [B, K]
    return torch.where(mask, per_step, 0.0).sum() / mask.sum()


# ---- the two models ----------------------------------------------------------------------------------
def build_ours() -> tuple[torch.nn.Module, Callable[[dict], torch.Tensor]]:
    from offmarl.nets.action_head import ActionHead
    from offmarl.nets.decision_transformer import DecisionTransformer, DTSpec

    spec = DTSpec("per_agent", n_agents=1, obs_dim=STATE_DIM, discrete=False, act_dim=ACT_DIM, hidden=HIDDEN,
                  n_layers=LAYERS, n_heads=HEADS, dropout=DROPOUT, activation="relu", feature_dim=0,
                  max_timestep=MAX_EP_LEN)
    model = DecisionTransformer(spec)
    with torch.no_grad():  # HF's initialisation of the action head, so both models start alike
        model.head.out.weight.normal_(0.0, 0.02)
        model.head.out.bias.zero_()
    head = ActionHead(low=[-1.0] * ACT_DIM, high=[1.0] * ACT_DIM)

    def loss(b: dict) -> torch.Tensor:
        out = model(b["rtg"], b["states"][:, :, None], b["actions"][:, :, None], b["timesteps"], b["mask"]).action[0]
        return masked_mse(head.squash(out.float()), b["actions"], b["mask"])

    return model, loss


def build_hf() -> tuple[torch.nn.Module, Callable[[dict], torch.Tensor]]:
    from transformers import DecisionTransformerConfig, DecisionTransformerModel

    config = DecisionTransformerConfig(state_dim=STATE_DIM, act_dim=ACT_DIM, hidden_size=HIDDEN, n_layer=LAYERS,
                                       n_head=HEADS, n_inner=4 * HIDDEN, activation_function="relu",
                                       resid_pdrop=DROPOUT, attn_pdrop=DROPOUT, embd_pdrop=DROPOUT,
                                       max_ep_len=MAX_EP_LEN, action_tanh=True)
    model = DecisionTransformerModel(config)

    def loss(b: dict) -> torch.Tensor:
        out = model(states=b["states"], actions=b["actions"], rewards=None, returns_to_go=b["rtg"],
                    timesteps=b["timesteps"], attention_mask=b["mask"].long(), return_dict=True)
        return masked_mse(out.action_preds, b["actions"], b["mask"])

    return model, loss


BUILDERS = {"offmarl": build_ours, "hf": build_hf}


# ---- measurement -------------------------------------------------------------------------------------
@dataclass
class Run:
    steps_per_s: float  # per second of CPU time of this process
    wall_steps_per_s: float
    losses: list[float]
    flops_per_step: float


def autocast(precision: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


class Trainer:
    """One model, its optimizer and its training step."""

    def __init__(self, which: str, precision: str, seed: int):
        torch.manual_seed(seed)
        self.model, self.loss_fn = BUILDERS[which]()
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=LR, weight_decay=WD, fused=True)
        self.precision = precision
        self.losses: list[float] = []
        self.cpu_seconds = self.wall_seconds = 0.0

    def flops(self, batch: dict) -> float:
        """FLOPs of one training step. Counted through torch's own matmul kernels: the flop counter does
        not know oneDNN's op (``offmarl.nets.linear``), which computes the same products."""
        from torch.utils.flop_counter import FlopCounterMode

        from offmarl.nets import linear

        counter = FlopCounterMode(display=False)
        with counter, mock.patch.object(linear, "ONEDNN_MIN_MACS", float("inf")):
            with autocast(self.precision):
                loss = self.loss_fn(batch)
            loss.backward()
        self.opt.zero_grad(set_to_none=True)
        return float(counter.get_total_flops())

    def step(self, batch: dict, timed: bool) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        with autocast(self.precision):
            loss = self.loss_fn(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        self.losses.append(float(loss.detach()))
        if timed:
            self.cpu_seconds += time.process_time() - c0
            self.wall_seconds += time.perf_counter() - t0


def train_group(precisions: list[str], seed: int, steps: int) -> dict[tuple[str, str], Run]:
    """Train offmarl's and HF's model in every precision on the same batches, one step of each in turn
    (the order rotating every step), so that a changing machine load affects every timing alike -- the
    cross-precision ratio (our bf16 vs HF fp32) included."""
    trainers = {(which, p): Trainer(which, p, seed) for p in precisions for which in BUILDERS}
    data = SyntheticWindows(seed)
    probe = data.sample()
    flops = {key: t.flops(probe) for key, t in trainers.items()}
    warm = min(10, steps // 10)
    order = list(trainers)
    for i in range(steps):
        batch = data.sample()
        shift = i % len(order)
        for key in order[shift:] + order[:shift]:
            trainers[key].step(batch, timed=i >= warm)
    n = steps - warm
    return {key: Run(n / t.cpu_seconds, n / t.wall_seconds, t.losses, flops[key]) for key, t in trainers.items()}




def matmul_peak(precision: str, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a large square matmul per second of process CPU time x threads (best of ``repeats``),
    the better of torch's ``matmul`` (MKL on the CPU) and oneDNN's linear: on some CPUs one of them is
    about twice the other (seen: on an AVX-512 AMD EPYC, MKL 92 and oneDNN 207 GFLOP/s in fp32), and
    offmarl's linear layers run on oneDNN where it is the faster."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    kernels = [lambda: torch.matmul(a, b)]
    if torch.backends.mkldnn.is_available():
        kernels.append(lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], ""))
    best = float("inf")
    for kernel in kernels:
        kernel()
        for _ in range(repeats):
            c0 = time.process_time()
            kernel()
            best = min(best, (time.process_time() - c0) / torch.get_num_threads())
    return 2 * n ** 3 / best / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 steps, 1 seed")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default 1000)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 3)")
    parser.add_argument("--precision", default=None,
                        help="comma-separated: fp32, bf16 (default both; fp32 alone on a CPU without native bf16)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see the docstring)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    steps = args.steps or (300 if args.quick else 1000)
    seeds = args.seeds or (1 if args.quick else 3)
    native = native_bf16(torch.device("cpu"))
    precisions = [p.strip() for p in (args.precision or ("fp32,bf16" if native else "fp32")).split(",") if p.strip()]
    if not native:
        print(f"{cpu_name()} has no native bf16 (AVX512-BF16 or AMX): oneDNN emulates bf16 matmuls about 10x slower "
              f"than fp32, so the bf16 goals cannot be met here" + ("" if "bf16" in precisions else
              "; bf16 is left out (--precision fp32,bf16 to run it anyway)"), file=sys.stderr)
    if steps < 110:
        parser.error("--steps must be >= 110 (the loss check averages the last 100 steps)")
    torch.set_num_threads(args.threads)
    try:
        import transformers
    except ImportError:
        print("transformers is not installed: .venv/bin/pip install 'transformers' torch==2.13.0 (the hf extra)")
        return 1

    peaks = {p: matmul_peak(p) for p in precisions}
    results: dict[tuple[str, str], list[Run]] = {}
    for seed in range(seeds):
        for (which, precision), run in train_group(precisions, seed, steps).items():
            results.setdefault((which, precision), []).append(run)
            print(f"  {which:8s} {precision} seed {seed}: {run.steps_per_s:6.2f} steps/s (CPU time), "
                  f"{run.wall_steps_per_s:6.2f} (wall), "
                  f"last-100 loss {np.mean(run.losses[-100:]):.5f}", file=sys.stderr, flush=True)

    # the peak is measured before and after the runs and the larger kept: on a shared machine a sibling
    # hyper-thread's load can halve a single measurement (seen: bf16 464 vs 1040 GFLOP/s)
    peaks = {p: max(peaks[p], matmul_peak(p)) for p in precisions}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("## DT training speed: offmarl vs transformers.DecisionTransformerModel\n")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
          f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}, native bf16: {'yes' if native else 'no'}), "
          f"load average {load:.2f} at the end; "
          f"{steps} steps x {seeds} seed(s); batch {BATCH}, K {K}, hidden {HIDDEN}, {LAYERS} layers, {HEADS} head\n")
    print("| model | precision | steps/s (CPU time) | wall steps/s | speed-up vs HF (same precision) | GFLOP/step "
          "| % of matmul peak | last-100 loss |")
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for precision in precisions:
        for which in ("offmarl", "hf"):
            runs = results[(which, precision)]
            sps = statistics.median(r.steps_per_s for r in runs)
            hf_sps = statistics.median(r.steps_per_s for r in results[("hf", precision)])
            flops = runs[0].flops_per_step
            frac = flops * sps / (peaks[precision] * 1e9)
            loss = float(np.mean([np.mean(r.losses[-100:]) for r in runs]))
            wall = statistics.median(r.wall_steps_per_s for r in runs)
            summary[f"{which}/{precision}"] = {"steps_per_s": sps, "wall_steps_per_s": wall,
                                               "gflop_per_step": flops / 1e9, "peak_fraction": frac,
                                               "loss_last100": loss}
            print(f"| {which} | {precision} | {sps:.2f} | {wall:.2f} | {sps / hf_sps:.2f}x | {flops / 1e9:.2f} "
                  f"| {100 * frac:.1f} % | {loss:.5f} |")
    print("\nmatmul peak (2048^3, torch.matmul or oneDNN linear, best of 10 before and after the runs, "
          "per core): "
          + ", ".join(f"{p} {peaks[p]:.0f} GFLOP/s" for p in precisions))

    checks = []
    for precision in precisions:
        ours = summary[f"offmarl/{precision}"]["steps_per_s"]
        hf = summary[f"hf/{precision}"]["steps_per_s"]
        checks.append((f"offmarl >= 1.5x HF ({precision})", ours / hf >= 1.5, f"{ours / hf:.2f}x"))
        ours_l, hf_l = summary[f"offmarl/{precision}"]["loss_last100"], summary[f"hf/{precision}"]["loss_last100"]
        gaps = [(np.mean(a.losses[-100:]) - np.mean(b.losses[-100:])) / np.mean(b.losses[-100:])
                for a, b in zip(results[("offmarl", precision)], results[("hf", precision)])]
        checks.append((f"equal loss ({precision}, last 100 steps, mean over {seeds} seed(s) within 5 %)",
                       abs(ours_l - hf_l) / hf_l <= 0.05,
                       f"{100 * (ours_l - hf_l) / hf_l:+.1f} % (per seed: "
                       + ", ".join(f"{100 * g:+.1f} %" for g in gaps) + ")"))
    if "bf16" in precisions and "fp32" in precisions:
        ratio = summary["offmarl/bf16"]["steps_per_s"] / summary["hf/fp32"]["steps_per_s"]
        checks.append(("offmarl bf16 >= 3x HF fp32", ratio >= 3.0, f"{ratio:.2f}x"))
    print("\n| check | met | value |\n|---|---|---|")
    for name, ok, value in checks:
        print(f"| {name} | {'yes' if ok else 'NO'} | {value} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "peaks_gflops": peaks, "steps": steps, "seeds": seeds,
                       "threads": torch.get_num_threads(), "checks": [list(c) for c in checks]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
