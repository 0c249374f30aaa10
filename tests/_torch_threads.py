"""A fixture that runs a test module's tiny networks on one torch thread (import it into the module).

Tiny tensors gain nothing from a second intra-op thread, and on a loaded 2-core machine the idle-waiting
of the second OpenMP thread can make a 16-wide LayerNorm take milliseconds. The previous thread count is
restored after the module.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
