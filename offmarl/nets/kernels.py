"""The one switch for the fast CPU kernels of offmarl's networks, and the lookup of the private ops they call.

Fast paths (each chosen per call, only where it applies; see its module):

* :mod:`offmarl.nets.linear`: large fp32 CPU linear layers and ReLU MLPs on oneDNN's matmul
  (``torch.ops.mkldnn._linear_pointwise``) with hand-written backwards;
* :mod:`offmarl.nets.transformer`: one-head attention with dropout as one autograd function, whose backward
  calls ``torch._softmax_backward_data``.

Each has a reference path in plain PyTorch (``F.linear`` + ``F.relu``; the transformer's general attention
path) that computes the same function with the same dropout draws: outputs and gradients of the two agree
up to floating-point rounding (their kernels sum in another order), not bit for bit.

The switch: the fast paths are on unless the environment variable ``OFFMARL_FAST_KERNELS`` is ``0`` (or
``false``/``off``/``no``) when this module is first imported; ``use_fast_kernels(False)`` turns them off
from then on, ``with use_fast_kernels(False): ...`` for the block only. The setting is per process, not
per thread, and is read when a layer runs its forward.

A fast path whose private op this PyTorch lacks takes its reference path instead, after one warning
naming the op (:func:`private_op`).
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Callable

import torch

ENV_VAR = "OFFMARL_FAST_KERNELS"
_TRUE, _FALSE = ("1", "true", "on", "yes"), ("0", "false", "off", "no")


def _setting_from_environment() -> bool:
    value = os.environ.get(ENV_VAR, "1").strip().lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(f"{ENV_VAR}={value!r}: expected one of {', '.join(_TRUE + _FALSE)}")
    return value in _TRUE


_enabled = _setting_from_environment()


def fast_kernels_enabled() -> bool:
    """Whether the fast paths may run (each still only where it applies)."""
    return _enabled


class use_fast_kernels:
    """Turns the fast paths on or off. Called, from now on; as a context manager, until the block ends,
    which restores the setting found at the call (like ``torch.set_grad_enabled``)."""

    def __init__(self, enabled: bool):
        global _enabled
        self.previous, _enabled = _enabled, bool(enabled)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info) -> None:
        global _enabled
        _enabled = self.previous


@functools.cache
def private_op(name: str) -> Callable | None:
    """The op ``name`` (its dotted path from ``torch``, e.g. ``"torch.ops.mkldnn._linear_pointwise"``), or
    None with one warning when this PyTorch lacks it (private ops may vanish in any release). Looked up once
    per name; a fast path asks only where it would otherwise run, so only a run that loses it is warned."""
    _, *attributes = name.split(".")
    try:
        return functools.reduce(getattr, attributes, torch)
    except AttributeError:
        warnings.warn(f"{name} is missing in PyTorch {torch.__version__}: offmarl computes what needs it with "
                      "plain PyTorch instead (same results up to rounding, slower)", RuntimeWarning, stacklevel=2)
        return None
