"""offmarl.core.optim: the optimizers every algorithm builds, fused where torch can."""

from __future__ import annotations

import copy

import pytest
import torch
from _torch_threads import one_torch_thread  # noqa: F401  (autouse: tiny networks on one torch thread)
from torch import nn

from offmarl.core.optim import make_optimizer


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))


def _train(net: nn.Module, opt: torch.optim.Optimizer, steps: int) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 3, generator=g)
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()


@pytest.mark.parametrize("name, cls, reference", [
    ("adamw", torch.optim.AdamW, lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-2)),
    ("adam", torch.optim.Adam, lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2)),
    ("rmsprop", torch.optim.RMSprop,
     lambda p: torch.optim.RMSprop(p, lr=1e-2, alpha=0.99, eps=1e-5, weight_decay=1e-2)),
])
def test_same_update_rule_as_torch_defaults(name, cls, reference):
    ours, theirs = _net(), _net()
    opt = make_optimizer(name, ours.parameters(), 1e-2, 1e-2)
    assert isinstance(opt, cls)
    assert opt.defaults.get("fused") is (True if name != "rmsprop" else None)
    _train(ours, opt, 20)
    _train(theirs, reference(theirs.parameters()), 20)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # the fused kernel rounds differently


def test_an_unfused_checkpoint_resumes_unfused_and_bit_exact():
    net = _net()
    old = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=1e-2)  # as algorithms built it before
    _train(net, old, 5)
    state = copy.deepcopy({"net": net.state_dict(), "opt": old.state_dict()})  # a checkpoint on disk
    _train(net, old, 5)
    expected = [p.detach().clone() for p in net.parameters()]

    resumed = _net()
    resumed.load_state_dict(state["net"])
    opt = make_optimizer("adamw", resumed.parameters(), 1e-2, 1e-2)
    opt.load_state_dict(state["opt"])
    assert not opt.param_groups[0]["fused"]
    _train(resumed, opt, 5)
    for a, b in zip(resumed.parameters(), expected):
        assert torch.equal(a, b)


def test_bad_names_and_empty_parameter_lists_are_refused():
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'; known: adamw, adam, rmsprop"):
        make_optimizer("sgd", _net().parameters(), 1e-3)
    with pytest.raises(ValueError, match="no parameters to optimize"):
        make_optimizer("adam", [], 1e-3)
