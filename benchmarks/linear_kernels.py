"""MKL vs oneDNN for the three products of a linear layer at the Decision Transformer's shapes.

    .venv/bin/python benchmarks/linear_kernels.py [--rows 3776] [--repeats 30] [--threads 1]

Why ``offmarl.nets.linear`` runs the forward ``x Wᵀ + b`` and the input gradient ``g W`` on oneDNN
(``torch.ops.mkldnn._linear_pointwise``) and the weight gradient ``gᵀ x`` on MKL (``torch.mm``): this
prints GFLOP/s of each kernel for each product at kzl's configuration (rows = batch 64 x 59 tokens;
in/out = the q/k/v projection 128 -> 384, the attention output 128 -> 128, the MLP 128 -> 512 and
512 -> 128), and of the forward with ReLU (oneDNN's fused post-op vs MKL + ``relu_``). Each timing is the
median over ``--repeats`` calls of process CPU time, with the caches flushed before every call (in a
training step every operand arrives cold). Re-run it on another CPU before trusting the choice there.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import torch

SHAPES = [(128, 384, "q/k/v projection"), (128, 128, "attention output"), (128, 512, "MLP in"), (512, 128, "MLP out")]


def gflops(fn: Callable[[], object], flops: float, repeats: int, flush: torch.Tensor) -> float:
    fn()
    times = []
    for _ in range(repeats):
        flush.add_(1)  # evict the operands from the caches
        c0 = time.process_time()
        fn()
        times.append(time.process_time() - c0)
    return flops / statistics.median(times) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=64 * 59, help="rows of x (default 3776 = batch 64 x 59 tokens)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        print("this PyTorch build has no oneDNN linear op (torch.ops.mkldnn._linear_pointwise)")
        return 1
    torch.set_num_threads(args.threads)
    onednn = torch.ops.mkldnn._linear_pointwise
    flush = torch.empty(64 << 20, dtype=torch.uint8)  # larger than the L3 cache
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {torch.backends.cpu.get_cpu_capability()}; "
          f"GFLOP/s, median of {args.repeats} cold calls; rows {args.rows}\n")
    print("| layer | in → out | forward MKL | forward oneDNN | + ReLU MKL | + ReLU oneDNN (fused) | input grad MKL "
          "| input grad oneDNN | weight grad MKL | weight grad oneDNN |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n_in, n_out, name in SHAPES:
        x = torch.randn(args.rows, n_in, generator=g)
        w, b = torch.randn(n_out, n_in, generator=g), torch.randn(n_out, generator=g)
        grad = torch.randn(args.rows, n_out, generator=g)
        flops = 2.0 * args.rows * n_in * n_out
        cells = [
            lambda: torch.addmm(b, x, w.t()),
            lambda: onednn(x, w, b, "none", [], ""),
            lambda: torch.addmm(b, x, w.t()).relu_(),
            lambda: onednn(x, w, b, "relu", [], ""),
            lambda: grad.mm(w),
            lambda: onednn(grad, w.t().contiguous(), None, "none", [], ""),
            lambda: grad.t().mm(x),
            lambda: onednn(grad.t(), x.t(), None, "none", [], ""),
        ]
        speeds = [gflops(fn, flops, args.repeats, flush) for fn in cells]
        print(f"| {name} | {n_in} → {n_out} | " + " | ".join(f"{s:.1f}" for s in speeds) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
