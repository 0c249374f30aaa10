"""One seed for everything, and the global RNG states a checkpoint must carry.

Convention for every other source of randomness: a component that draws random numbers owns its
generator (``np.random.default_rng(seed)`` or a ``torch.Generator``), receives ``seed`` from whoever
builds it (the fit loop passes its seed to ``algo.make_sampler(dataset, seed)``), and exposes the
generator's state through ``state_dict()`` / ``load_state_dict()`` as plain Python values. The global
generators (Python ``random``, NumPy's legacy ``np.random``, torch's default generator) are covered by
:func:`seed_everything` and by :func:`global_rng_state` / :func:`set_global_rng_state`.

Same seed ⇒ same numbers on CPU (with the same torch thread count: intra-op reductions may split
differently over a different number of threads).
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any, Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python ``random``, NumPy's legacy global generator and torch (CPU and every CUDA device).

    Also turns off cuDNN's autotuner and asks for its deterministic kernels (free on CPU, cheap on GPU).
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def derive_seed(seed: int, *keys: int | str) -> int:
    """A 31-bit seed derived from ``seed`` and ``keys`` (stable across runs and platforms).

    Gives each piece of a collection (pilot rollouts, composition components, the mixing coins) or of a
    model (the distillation teacher, the students, the mapping networks) its own independent stream from one
    user seed."""
    words = [int(seed) & 0xFFFFFFFF]
    for key in keys:
        if isinstance(key, str):
            words.extend(key.encode())
        else:
            words.append(int(key) & 0xFFFFFFFF)
    return int(np.random.SeedSequence(words).generate_state(1)[0] & 0x7FFFFFFF)


def draw_seed() -> int:
    """One 31-bit number from torch's global generator: the seed an algorithm derives its networks' initial
    weights from (``derive_seed(draw_seed(), "students")``). Built after ``seed_everything(seed)`` it is a
    function of ``seed``."""
    return int(torch.randint(0, 2 ** 31 - 1, (1,)))


@contextlib.contextmanager
def torch_seeded(seed: int) -> Iterator[None]:
    """Run the block on torch's CPU generator seeded with ``seed``, then restore the generator's state: what
    the block draws (e.g. a network's initial weights) depends on ``seed`` only, and the draws outside it
    are the same as if the block had not run."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def global_rng_state() -> dict[str, Any]:
    """The global generators' states as values ``torch.load(weights_only=True)`` accepts."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(mt), "gauss": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`global_rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"],
                         nps["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def set_threads(threads: int) -> None:
    """Limit this process to ``threads`` intra-op threads: torch's, and OpenMP/MKL/OpenBLAS's for whatever
    starts later (a worker process). A run's numbers depend on its thread count (intra-op reductions split
    differently), which config.json records. On a machine shared with other jobs 1 is much faster than 2:
    OpenMP threads that wait for a busy core stall every operation."""
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    torch.set_num_threads(threads)
